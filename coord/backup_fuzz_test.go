package coord

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/tree"
)

// fuzzBackup is a real backup of a small tree.
func fuzzBackup(tb testing.TB) []byte {
	t := tree.New(tree.Options{})
	for i := range 5 {
		res := t.Apply(tree.Txn{Zxid: int64(1<<32 | (i + 1)), Time: 1, Op: tree.Op{Type: tree.OpCreate,
			Path: fmt.Sprintf("/n%d", i), Data: []byte{byte(i)}}})
		require.NoError(tb, res.Err)
	}
	var buf bytes.Buffer
	_, err := writeBackup(context.Background(), &buf, t, func(z int64) (backupMeta, error) {
		return backupMeta{Zxid: z, Voters: []uint64{1, 2, 3}, Cluster: "c", NodeID: 1, Time: 1}, nil
	})
	require.NoError(tb, err)
	return buf.Bytes()
}

// FuzzReadBackup: the backup decoder (Restore and ReadBackup read files
// an operator hands them) never panics, and accepts only what verifies.
func FuzzReadBackup(f *testing.F) {
	good := fuzzBackup(f)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(good[:12])
	f.Add([]byte(backupMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := ReadBackup(bytes.NewReader(b))
		if err != nil {
			require.ErrorIs(t, err, ErrBadBackup)
			return
		}
		require.Positive(t, info.Zxid)
		require.NotEmpty(t, info.Voters)
		require.Equal(t, int64(len(b)), info.Size)
		// Whatever verifies also decodes the same way when streamed.
		again, err := decodeBackup(bytes.NewReader(b), io.Discard)
		require.NoError(t, err)
		require.Equal(t, info.SHA256, again.SHA256)
	})
}

// TestBackupRoundTrip: a backup of a tree reads back with its info and
// every znode; a backup larger than one chunk spans several frames.
func TestBackupRoundTrip(t *testing.T) {
	good := fuzzBackup(t)
	info, err := ReadBackup(bytes.NewReader(good))
	require.NoError(t, err)
	require.Equal(t, int64(1<<32|5), info.Zxid)
	require.Equal(t, 6, info.Znodes)
	require.Equal(t, []uint64{1, 2, 3}, info.Voters)
	require.Equal(t, "c", info.Cluster)

	big := tree.New(tree.Options{})
	for i := range 40 {
		res := big.Apply(tree.Txn{Zxid: int64(1<<32 | (i + 1)), Time: 1, Op: tree.Op{Type: tree.OpCreate,
			Path: fmt.Sprintf("/b%d", i), Data: bytes.Repeat([]byte{byte(i)}, 20<<10)}})
		require.NoError(t, res.Err)
	}
	var buf bytes.Buffer
	_, err = writeBackup(context.Background(), &buf, big, func(z int64) (backupMeta, error) {
		return backupMeta{Zxid: z, Voters: []uint64{7}}, nil
	})
	require.NoError(t, err)
	require.Greater(t, buf.Len(), 3*backupChunk)
	info, err = ReadBackup(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	require.Equal(t, 41, info.Znodes)
}
