package wal

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// Wipe empties the log and forgets its base, durably: reopened, the log
// starts from zero and takes records from 1 again.
func TestWipeForgetsRecordsAndBase(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{SegmentSize: 4 << 10})
	require.NoError(t, err)
	require.NoError(t, l.Reset(100)) // as for a snapshot at 100
	for z := uint64(101); z <= 300; z++ {
		require.NoError(t, l.Commit(Record{Zxid: z, Data: fmt.Appendf(nil, "r%d", z)}))
	}
	require.EqualValues(t, 100, l.Base())
	require.NoError(t, l.Wipe())
	require.Zero(t, l.Base())
	require.Zero(t, l.LastZxid())
	require.NoError(t, l.Close())

	l, err = Open(dir, Options{SegmentSize: 4 << 10})
	require.NoError(t, err)
	defer l.Close()
	require.Zero(t, l.Base())
	require.Zero(t, l.LastZxid())
	require.NoError(t, l.Commit(Record{Zxid: 1, Data: []byte("again")}))
	require.EqualValues(t, 1, l.LastZxid())
}
