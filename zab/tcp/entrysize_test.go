package tcp

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/zab"
)

// TestMaxEntryFitsAFrame: an entry of zab.MaxEntrySize, in any message
// that carries one (a PROPOSAL, a forwarded write), fits one frame of the
// default size with room to spare, sealed (with a SecretKey, the sender
// packs MaxFrameSize - SealOverhead payload bytes) or not.
func TestMaxEntryFitsAFrame(t *testing.T) {
	data := make([]byte, zab.MaxEntrySize)
	for _, m := range []zab.Message{
		{Type: zab.MsgProposal, From: 1, To: 2, Epoch: 1 << 30, Prev: 1<<62 - 1, Zxid: 1<<62 - 1,
			Entries: []zab.Entry{{Zxid: 1 << 62, Data: data}}},
		{Type: zab.MsgPropose, From: 1, To: 2, Epoch: 1 << 30, Seq: 1<<64 - 1, ReqIDs: []uint64{1<<64 - 1},
			Entries: []zab.Entry{{Data: data}}},
	} {
		frame, n, err := NewBatchEncoder(DefaultConfig(1).MaxFrameSize/2 - SealOverhead).Encode([]zab.Message{m})
		require.NoError(t, err, "%v", m.Type)
		require.Equal(t, 1, n)
		require.Less(t, len(frame), DefaultConfig(1).MaxFrameSize/2)
		s, _ := fuzzSession(t)
		sealed, err := s.seal(frame)
		require.NoError(t, err)
		require.LessOrEqual(t, len(sealed)-HeaderSize, DefaultConfig(1).MaxFrameSize/2)
	}
}
