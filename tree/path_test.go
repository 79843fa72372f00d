package tree

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestValidatePath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
		why  string
	}{
		{"/", true, ""},
		{"/a", true, ""},
		{"/a/b/c", true, ""},
		{"/a.b", true, ""},
		{"/...", true, ""},
		{"/.a/b.", true, ""},
		{"/zookeeper", true, ""},
		{"/ünïcødé/路径", true, ""},
		{"/" + strings.Repeat("x", MaxPathLen-1), true, ""},
		{"", false, "empty"},
		{"a", false, "must start with '/'"},
		{"a/b", false, "must start with '/'"},
		{"/a/", false, "must not end with '/'"},
		{"//", false, "must not end with '/'"},
		{"//a", false, "empty segment"},
		{"/a//b", false, "empty segment"},
		{"/.", false, "relative segment"},
		{"/..", false, "relative segment"},
		{"/a/./b", false, "relative segment"},
		{"/a/../b", false, "relative segment"},
		{"/a/..", false, "relative segment"},
		{"/a\x00b", false, "invalid character"},
		{"/a\x1fb", false, "invalid character"},
		{"/a\x7fb", false, "invalid character"},
		{"/a\u0085b", false, "invalid character"},
		{"/a\ud7ffb", true, ""},
		{"/a\ue000b", false, "invalid character"},
		{"/a\ufff0b", false, "invalid character"},
		{"/a\xffb", false, "not valid UTF-8"},
		{"/" + strings.Repeat("x", MaxPathLen), false, "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			err := ValidatePath(tc.path)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidPath)
			require.Contains(t, err.Error(), tc.why)
		})
	}
}

func TestValidateCreatePathSequential(t *testing.T) {
	require.NoError(t, validateCreatePath("/a/", true), "a sequential create may end in '/'")
	require.ErrorIs(t, validateCreatePath("/a/", false), ErrInvalidPath)
	require.ErrorIs(t, validateCreatePath("/a//", true), ErrInvalidPath)
}

func FuzzValidatePath(f *testing.F) {
	for _, s := range []string{"/", "/a/b", "/a/../b", "//", "/a\x00", "/\ufff0", "/..a", "/a/."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		err := ValidatePath(p)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidPath)
			return
		}
		// Whatever passes obeys every rule.
		require.True(t, strings.HasPrefix(p, "/"))
		require.True(t, utf8.ValidString(p))
		require.LessOrEqual(t, len(p), MaxPathLen)
		if p == "/" {
			return
		}
		for _, seg := range strings.Split(p[1:], "/") {
			require.NotEmpty(t, seg)
			require.NotEqual(t, ".", seg)
			require.NotEqual(t, "..", seg)
		}
		for _, r := range p {
			require.False(t, invalidPathRune(r))
		}
		parent, name := splitPath(p)
		require.Equal(t, p, joinPath(parent, name))
	})
}
