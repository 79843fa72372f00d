package wal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadEpoch: an epoch file with any contents is read or refused as
// corrupt (never a panic, never a guess), and what is accepted is exactly
// the file WriteEpoch writes for that epoch.
func FuzzReadEpoch(f *testing.F) {
	seedDir := f.TempDir()
	for _, e := range []uint32{0, 1, 7, 1<<32 - 1} {
		if err := WriteEpoch(seedDir, AcceptedEpochFile, e); err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(seedDir, AcceptedEpochFile))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(append(b, 0))
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, CurrentEpochFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
		e, err := ReadEpoch(dir, CurrentEpochFile)
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("bad epoch file not reported as corrupt: %v", err)
			}
			return
		}
		if err := WriteEpoch(dir, AcceptedEpochFile, e); err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(dir, AcceptedEpochFile))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, want) {
			t.Fatalf("accepted % x as epoch %d, which is written as % x", data, e, want)
		}
	})
}
