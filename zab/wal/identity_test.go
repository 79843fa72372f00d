package wal

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIdentityRoundTrip(t *testing.T) {
	dir := t.TempDir()
	_, err := ReadIdentity(dir)
	require.ErrorIs(t, err, fs.ErrNotExist)
	for _, id := range []Identity{
		{Cluster: "coord", NodeID: 1},
		{Cluster: "", ClusterID: 1<<64 - 1, NodeID: 1<<64 - 1},
		{Cluster: strings.Repeat("x", MaxClusterName), ClusterID: 42, NodeID: 3, Member: true, Fixed: true},
	} {
		require.NoError(t, WriteIdentity(dir, id))
		got, err := ReadIdentity(dir)
		require.NoError(t, err)
		require.Equal(t, id, got)
	}
	require.Error(t, WriteIdentity(dir, Identity{Cluster: strings.Repeat("x", MaxClusterName+1)}))
}

func TestIdentityCorrupt(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, WriteIdentity(dir, Identity{Cluster: "coord", ClusterID: 5, NodeID: 2}))
	path := filepath.Join(dir, IdentityFile)
	good, err := os.ReadFile(path)
	require.NoError(t, err)
	for i := range good {
		b := bytes.Clone(good)
		b[i] ^= 0x10
		require.NoError(t, os.WriteFile(path, b, 0o644))
		_, err := ReadIdentity(dir)
		require.ErrorIs(t, err, ErrCorrupt, "flipped byte %d", i)
		require.ErrorContains(t, err, path)
	}
}

// TestPurgeRecordsBase: the log remembers that its front was removed, so
// recovery can ask for the snapshot that replaces it.
func TestPurgeRecordsBase(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{SegmentSize: 256})
	require.NoError(t, err)
	for z := uint64(1); z <= 30; z++ {
		require.NoError(t, l.Commit(Record{Zxid: z, Data: make([]byte, 60)}))
	}
	require.Zero(t, l.Base())
	n, err := l.PurgeThrough(10)
	require.NoError(t, err)
	require.Positive(t, n)
	base := l.Base()
	require.NotZero(t, base)
	require.LessOrEqual(t, base, uint64(10))
	require.Equal(t, base+1, l.FirstZxid())
	_, err = l.PurgeThrough(1) // nothing more to remove: the base stays
	require.NoError(t, err)
	require.Equal(t, base, l.Base())
	require.NoError(t, l.Close())

	l, err = Open(dir, Options{})
	require.NoError(t, err)
	require.Equal(t, base, l.Base(), "the base survives a reopen")
	require.NoError(t, l.Reset(100))
	require.Equal(t, uint64(100), l.Base())
	require.Zero(t, l.LastZxid())
	require.NoError(t, l.Reset(50))
	require.Equal(t, uint64(100), l.Base(), "the base never goes back")
	require.NoError(t, l.Close())

	require.NoError(t, os.WriteFile(filepath.Join(dir, BaseFile), []byte("junk"), 0o644))
	_, err = Open(dir, Options{})
	require.ErrorIs(t, err, ErrCorrupt)
}

// FuzzReadIdentity: an identity file with any contents is read or refused
// as corrupt (never a panic), and what is accepted is exactly the file
// WriteIdentity writes for it.
func FuzzReadIdentity(f *testing.F) {
	for _, id := range []Identity{{}, {Cluster: "coord", ClusterID: 3, NodeID: 1, Member: true}, {Cluster: strings.Repeat("a", MaxClusterName)}} {
		b, err := encodeIdentity(id)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])
		f.Add(append(bytes.Clone(b), 0))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, IdentityFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
		id, err := ReadIdentity(dir)
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("bad identity file not reported as corrupt: %v", err)
			}
			return
		}
		want, err := encodeIdentity(id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, want) {
			t.Fatalf("accepted % x as %+v, which is written as % x", data, id, want)
		}
	})
}

// FuzzReadBase: the same for the log's base file.
func FuzzReadBase(f *testing.F) {
	for _, z := range []uint64{0, 1, 1<<64 - 1} {
		b := encodeBase(z)
		f.Add(b)
		f.Add(b[:len(b)-1])
		f.Add(append(bytes.Clone(b), 0))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		z, err := decodeBase("base", data)
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("bad base file not reported as corrupt: %v", err)
			}
			return
		}
		if want := encodeBase(z); !bytes.Equal(data, want) {
			t.Fatalf("accepted % x as base %d, which is written as % x", data, z, want)
		}
	})
}
