package zab

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// newTestAppender opens a data directory with epoch 1 current and an
// appender on it whose sends are checked against the disk: a message may go
// only once the entries it follows are durable.
func newTestAppender(t *testing.T) (*appender, *diskLog, *MemoryStorage, func() []Message) {
	t.Helper()
	dir := t.TempDir()
	dl, err := openDiskLog(dir, testCluster, 1, 3, nil)
	require.NoError(t, err)
	mem := NewMemoryStorage()
	_, err = dl.recover(mem)
	require.NoError(t, err)
	require.NoError(t, dl.persist(nil, HardState{AcceptedEpoch: 1, CurrentEpoch: 1, ClusterID: 9}))
	var mu sync.Mutex
	var sent []Message
	send := func(m Message) error {
		// On the appender's goroutine: report, do not stop it.
		ents, err := dl.readBack(0, 1<<20)
		var last Zxid
		if len(ents) > 0 {
			last = ents[len(ents)-1].Zxid
		}
		if err != nil || last < m.Zxid {
			t.Errorf("acknowledgement of %v sent with the log written to %v (%v)", m.Zxid, last, err)
		}
		mu.Lock()
		sent = append(sent, m)
		mu.Unlock()
		return nil
	}
	a := newAppender(nodeLog{disk: dl, mem: mem}, send)
	t.Cleanup(func() { a.stop(); dl.close() })
	return a, dl, mem, func() []Message {
		mu.Lock()
		defer mu.Unlock()
		return append([]Message(nil), sent...)
	}
}

func ent(i uint32) Entry { return Entry{Zxid: NewZxid(1, i), Data: []byte{byte(i)}} }

func ack(i uint32) Message { return Message{Type: MsgAck, To: 2, Zxid: NewZxid(1, i)} }

// The appender writes started entries off the caller, in order, reports the
// durable end, and sends each acknowledgement after the write it follows.
func TestAppenderWritesInOrderAndAcksAfter(t *testing.T) {
	a, dl, mem, sent := newTestAppender(t)
	for i := uint32(1); i <= 20; i++ {
		require.NoError(t, a.StartAppend([]Entry{ent(i)}, []Message{ack(i)}))
		last, err := mem.LastZxid()
		require.NoError(t, err)
		require.Equal(t, NewZxid(1, i), last, "readable by the core at once")
	}
	deadline := time.After(10 * time.Second)
	for {
		z, err := a.state()
		require.NoError(t, err)
		if z == NewZxid(1, 20) {
			break
		}
		select {
		case <-a.notify:
		case <-deadline:
			t.Fatalf("durable end %v, want %v", z, NewZxid(1, 20))
		}
	}
	require.NoError(t, a.Flush())
	got := sent()
	require.Len(t, got, 20)
	for i, m := range got {
		require.Equal(t, NewZxid(1, uint32(i+1)), m.Zxid, "in order")
	}
	ents, err := dl.readBack(0, 1<<20)
	require.NoError(t, err)
	require.Len(t, ents, 20)

	// After a Flush the writes it waited for are not reported again.
	z, err := a.state()
	require.NoError(t, err)
	require.Zero(t, z)

	// Acknowledgements with nothing to write and nothing under way go at
	// once.
	require.NoError(t, a.StartAppend(nil, []Message{ack(20)}))
	require.Len(t, sent(), 21)
}

// A failed write stops the appender: the error is reported, Flush returns
// it, later appends are refused, and the acknowledgements that followed
// the failed write are never sent.
func TestAppenderWriteErrorStops(t *testing.T) {
	a, dl, _, sent := newTestAppender(t)
	require.NoError(t, a.StartAppend([]Entry{ent(1)}, []Message{ack(1)}))
	require.NoError(t, a.Flush())
	dl.close() // the next write fails
	require.NoError(t, a.StartAppend([]Entry{ent(2)}, []Message{ack(2)}))
	require.Error(t, a.Flush())
	_, err := a.state()
	require.Error(t, err)
	require.Error(t, a.StartAppend([]Entry{ent(3)}, nil))
	require.Len(t, sent(), 1)
}

// Stop returns once the write under way ends; Flush after it refuses
// rather than report unwritten entries durable.
func TestAppenderStop(t *testing.T) {
	a, _, _, _ := newTestAppender(t)
	require.NoError(t, a.StartAppend([]Entry{ent(1)}, nil))
	a.stop()
	require.ErrorIs(t, a.StartAppend([]Entry{ent(2)}, nil), errAppenderStopped)
	if err := a.Flush(); err != nil {
		require.ErrorIs(t, err, errAppenderStopped)
	}
}
