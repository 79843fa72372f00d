package tree

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTxnCarriesDataLimit: the limit on node data comes with the txn, so
// every replica applies the same result whatever its own configuration
// (issue 10 item 9); no txn may allow more than MaxDataLimit.
func TestTxnCarriesDataLimit(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 10)
	tests := []struct {
		name    string
		maxData int32
		data    []byte
		want    error
	}{
		{"within the txn's limit", 10, big, nil},
		{"over the txn's limit", 9, big, ErrDataTooLarge},
		{"zero means MaxDataLimit", 0, big, nil},
		{"at MaxDataLimit", 0, make([]byte, MaxDataLimit), nil},
		{"over MaxDataLimit", 0, make([]byte, MaxDataLimit+1), ErrDataTooLarge},
		{"a txn cannot raise MaxDataLimit", 1 << 30, make([]byte, MaxDataLimit+1), ErrDataTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Two replicas, as differently configured as Options allow.
			for _, opts := range []Options{{}, {WatchHistory: -1}} {
				a := newApplier(opts)
				a.maxData = tc.maxData
				r := a.apply(0, Op{Type: OpCreate, Path: "/n", Data: tc.data})
				require.ErrorIs(t, r.Err, tc.want)
				a.create(t, "/set", "", Persistent)
				r = a.apply(0, Op{Type: OpSetData, Path: "/set", Data: tc.data, Version: -1})
				require.ErrorIs(t, r.Err, tc.want)
			}
		})
	}
}

func TestMultiOpsAreCapped(t *testing.T) {
	a := newApplier(Options{})
	multi := func(n int) Op {
		op := Op{Type: OpMulti}
		for i := range n {
			op.Ops = append(op.Ops, Op{Type: OpCreate, Path: fmt.Sprintf("/m%d", i)})
		}
		return op
	}
	r := a.apply(0, multi(MaxMultiOps+1))
	require.ErrorIs(t, r.Err, ErrRequestTooLarge)
	require.Equal(t, 1, a.t.NodeCount(), "nothing applied")
	r = a.apply(0, multi(MaxMultiOps))
	require.NoError(t, r.Err)
	require.Equal(t, MaxMultiOps+1, a.t.NodeCount())
	checkDigest(t, a.t)
}

// TestSnapshotWriterEnforcesReaderLimits: a frame the reader would refuse
// fails WriteSnapshot instead of producing an unreadable snapshot.
func TestSnapshotWriterEnforcesReaderLimits(t *testing.T) {
	a := newApplier(Options{})
	for id := int64(1); id <= 50; id++ {
		a.session(t, id)
	}
	a.create(t, "/data", strings.Repeat("d", 100), Persistent)

	for _, lim := range []frameLimits{
		{meta: 64, node: maxNodeFrame}, // the session table overflows the meta frame
		{meta: maxMetaFrame, node: 64}, // /data overflows its node frame
	} {
		a.t.limits = lim
		var buf bytes.Buffer
		_, err := a.t.WriteSnapshot(&buf)
		require.ErrorIs(t, err, ErrSnapshotTooLarge, "limits %+v", lim)
	}

	// Within the limits, what is written reads back with the same limits.
	lim := frameLimits{meta: 4096, node: 512}
	a.t.limits = lim
	var buf bytes.Buffer
	_, err := a.t.WriteSnapshot(&buf)
	require.NoError(t, err)
	back, err := readSnapshotLimited(&buf, Options{}, lim)
	require.NoError(t, err)
	require.Equal(t, a.t.Digest(), back.Digest())
}
