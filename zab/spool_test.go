package zab

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFileSpool spools chunks to a file and reads them back whole, and
// refuses to hand out bytes the file no longer holds as written.
func TestFileSpool(t *testing.T) {
	chunks := [][]byte{[]byte("first chunk "), bytes.Repeat([]byte("x"), 4096), []byte("last")}
	want := bytes.Join(chunks, nil)
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
		ok     bool
	}{
		{name: "intact", ok: true},
		{name: "byte flipped", damage: func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			require.NoError(t, err)
			defer f.Close()
			_, err = f.WriteAt([]byte("y"), 100)
			require.NoError(t, err)
		}},
		{name: "truncated", damage: func(t *testing.T, path string) {
			require.NoError(t, os.Truncate(path, int64(len(want)-1)))
		}},
		{name: "extended", damage: func(t *testing.T, path string) {
			require.NoError(t, os.Truncate(path, int64(len(want)+1)))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), spoolFile)
			s := newFileSpool(path)
			for _, c := range chunks {
				require.NoError(t, s.Append(c))
			}
			require.EqualValues(t, len(want), s.Len())
			if tc.damage != nil {
				tc.damage(t, path)
			}
			got, err := s.Bytes()
			if tc.ok {
				require.NoError(t, err)
				require.Equal(t, want, got)
				require.Equal(t, len(got), cap(got), "read back in one slice of its size")
			} else {
				require.ErrorIs(t, err, ErrSpoolDamaged)
				require.Nil(t, got)
			}
			// Reset empties it, and it spools the next image from zero.
			require.NoError(t, s.Reset())
			require.Zero(t, s.Len())
			require.NoError(t, s.Append([]byte("next")))
			got, err = s.Bytes()
			require.NoError(t, err)
			require.Equal(t, []byte("next"), got)
			require.NoError(t, s.Close())
			require.NoFileExists(t, path)
		})
	}
}
