package coord

import (
	"bytes"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
)

// Fuzz targets for the two decoders coord runs on bytes from other nodes:
// replicated requests (from the log, so from a leader or from disk) and
// MsgApp payloads (session heartbeats and their acks, from any
// authenticated peer). CI runs every Fuzz* target for a few seconds.

// fuzzRequests are real encodings of the ops coord proposes.
func fuzzRequests(tb testing.TB) [][]byte {
	ops := []tree.Op{
		{Type: tree.OpCreate, Path: "/a", Data: []byte("x")},
		{Type: tree.OpCreate, Path: "/a/s-", Mode: tree.EphemeralSequential},
		{Type: tree.OpCreate, Path: "/t", Mode: tree.PersistentWithTTL, TTL: 1000},
		{Type: tree.OpSetData, Path: "/a", Data: []byte("y"), Version: 0},
		{Type: tree.OpDelete, Path: "/a", Version: -1},
		{Type: tree.OpCheck, Path: "/", Version: -1},
		{Type: tree.OpCreateSession, Timeout: 5000},
		{Type: tree.OpCloseSession, Session: 7},
		{Type: tree.OpReap, Path: "/t"},
		{Type: tree.OpMulti, Ops: []tree.Op{
			{Type: tree.OpCreate, Path: "/m"},
			{Type: tree.OpCheck, Path: "/m", Version: 0},
			{Type: tree.OpSetData, Path: "/m", Data: []byte("z"), Version: -1},
		}},
	}
	var out [][]byte
	for i, op := range ops {
		req := request{Origin: uint64(i%3 + 1), ReqID: uint64(100 + i), Time: 1_700_000_000_000, Session: int64(i % 2), Op: op}
		if i%2 == 1 {
			req.Forget = []uint64{uint64(99 + i), 1 << 63} // the previous request's id, and one never seen
		}
		b, err := encodeRequest(&req)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// applyAll applies data as one committed entry, after a few real requests so
// that hostile ops find nodes and a session to act on, and returns the tree.
func applyAll(t *testing.T, data []byte) *tree.Tree {
	tr := tree.New(tree.Options{})
	f := newFSM(tr)
	z := zab.Zxid(1<<32 | 1)
	for _, b := range fuzzRequests(t)[:3] {
		f.Apply(zab.Entry{Zxid: z, Data: b})
		z++
	}
	f.Apply(zab.Entry{Zxid: z, Data: data})
	if got := tr.LastZxid(); got != int64(z) {
		t.Fatalf("tree at zxid %#x after applying entry %#x", got, z)
	}
	return tr
}

// FuzzDecodeRequest: any log entry decodes or is refused without panicking;
// what decodes re-encodes to a fixed point; applying any entry never panics,
// always advances the tree's zxid, and is deterministic (two replicas that
// apply the same entry end with the same digest).
func FuzzDecodeRequest(f *testing.F) {
	stamp := newStamper(func() time.Time { return time.UnixMilli(1_800_000_000_000) })
	for _, b := range fuzzRequests(f) {
		f.Add(b)
		f.Add(stamp(b)) // as a leader logs it
	}
	f.Add([]byte{})
	f.Add([]byte{stampTag})                         // a stamp cut short
	f.Add([]byte{stampTag, 0, 0, 0, 0, 0, 0, 0, 1}) // a stamp and no request
	f.Add([]byte{0xc0})
	f.Add([]byte{0x81, 0xa1, 'p', 0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff}) // hostile array length
	f.Add([]byte{0x81, 0xa1, 'o', 0xa3, 'b', 'a', 'd'})                           // wrongly typed field
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeRequest(data)
		if err == nil {
			b1, err := encodeRequest(&r)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			r2, err := decodeRequest(b1)
			if err != nil {
				t.Fatalf("decode of our own encoding: %v", err)
			}
			b2, _ := encodeRequest(&r2)
			if !bytes.Equal(b1, b2) {
				t.Fatalf("encoding is not a fixed point:\n% x\n% x", b1, b2)
			}
		}
		if len(data) > 4096 {
			return // the apply property does not depend on size
		}
		d1, d2 := applyAll(t, data).Digest(), applyAll(t, data).Digest()
		if d1 != d2 {
			t.Fatalf("replicas diverge: digest %#x vs %#x", d1, d2)
		}
	})
}

// FuzzDecodeAppMsg: any MsgApp payload decodes or is refused without
// panicking, and what decodes re-encodes to a fixed point.
func FuzzDecodeAppMsg(f *testing.F) {
	for _, m := range []appMsg{
		{Kind: msgHeartbeat, Session: 1<<32 | 5, Sent: 1_700_000_000_000_000_000},
		{Kind: msgHeartbeatAck, Session: 1<<32 | 5, Sent: 1_700_000_000_000_000_000, OK: true},
		{Kind: msgHeartbeatAck, Session: -1, Sent: -1},
		{Kind: msgResyncAsk}, {Kind: msgResyncGrant, Sent: 7}, {Kind: msgResyncDone},
	} {
		b, err := msgpack.Marshal(&m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x81, 0xa1, 'k', 0xcd, 0x01, 0x00})  // kind overflows uint8
	f.Add([]byte{0x81, 0xa1, 's', 0xa1, 'x'})         // wrongly typed session
	f.Add([]byte{0x91, 0xdd, 0xff, 0xff, 0xff, 0xff}) // hostile array length
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeAppMsg(data)
		if err != nil {
			return
		}
		b1, err := msgpack.Marshal(&m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2, err := decodeAppMsg(b1)
		if err != nil {
			t.Fatalf("decode of our own encoding: %v", err)
		}
		if m2 != m {
			t.Fatalf("round trip changed the message: %+v -> %+v", m, m2)
		}
	})
}
