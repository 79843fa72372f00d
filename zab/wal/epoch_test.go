package wal

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEpochRoundTrip(t *testing.T) {
	dir := t.TempDir()
	_, err := ReadEpoch(dir, AcceptedEpochFile)
	require.ErrorIs(t, err, fs.ErrNotExist, "a fresh peer has no epoch file")
	for _, e := range []uint32{0, 1, 7, 1<<32 - 1} {
		require.NoError(t, WriteEpoch(dir, AcceptedEpochFile, e))
		got, err := ReadEpoch(dir, AcceptedEpochFile)
		require.NoError(t, err)
		assert.Equal(t, e, got)
	}
	require.NoError(t, WriteEpoch(dir, CurrentEpochFile, 3))
	cur, err := ReadEpoch(dir, CurrentEpochFile)
	require.NoError(t, err)
	acc, err := ReadEpoch(dir, AcceptedEpochFile)
	require.NoError(t, err)
	assert.Equal(t, uint32(3), cur)
	assert.Equal(t, uint32(1<<32-1), acc, "the two files are independent")
	left, err := filepath.Glob(filepath.Join(dir, "*.tmp"))
	require.NoError(t, err)
	assert.Empty(t, left)
}

// TestEpochAtomicity: a crash before the rename leaves a temporary file
// (possibly partial); the old value stays readable and the next write works.
func TestEpochAtomicity(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, WriteEpoch(dir, CurrentEpochFile, 5))
	tmp := filepath.Join(dir, CurrentEpochFile+tmpSuffix)
	require.NoError(t, os.WriteFile(tmp, []byte("CEPO\x06"), 0o644))
	got, err := ReadEpoch(dir, CurrentEpochFile)
	require.NoError(t, err)
	assert.Equal(t, uint32(5), got)
	require.NoError(t, WriteEpoch(dir, CurrentEpochFile, 6))
	got, err = ReadEpoch(dir, CurrentEpochFile)
	require.NoError(t, err)
	assert.Equal(t, uint32(6), got)
	_, err = os.Stat(tmp)
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestEpochCorrupt(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, WriteEpoch(dir, AcceptedEpochFile, 9))
	good, err := os.ReadFile(filepath.Join(dir, AcceptedEpochFile))
	require.NoError(t, err)
	tests := []struct {
		name   string
		mutate func([]byte) []byte
	}{
		{"empty", func([]byte) []byte { return nil }},
		{"short", func(b []byte) []byte { return b[:11] }},
		{"trailing byte", func(b []byte) []byte { return append(b, 0) }},
		{"bad magic", func(b []byte) []byte { b[0] = 'X'; return b }},
		{"epoch bit flip", func(b []byte) []byte { b[4] ^= 1; return b }},
		{"crc bit flip", func(b []byte) []byte { b[11] ^= 0x80; return b }},
		{"text", func([]byte) []byte { return []byte("9\n") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			path := filepath.Join(d, AcceptedEpochFile)
			require.NoError(t, os.WriteFile(path, tt.mutate(append([]byte(nil), good...)), 0o644))
			_, err := ReadEpoch(d, AcceptedEpochFile)
			require.ErrorIs(t, err, ErrCorrupt)
			var ce *CorruptError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, path, ce.File)
		})
	}
}
