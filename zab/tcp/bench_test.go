package tcp

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/coord-dev/coord/zab"
	"github.com/stretchr/testify/require"
)

// benchSend measures one-way throughput from one transport to another over
// loopback: b.N messages are sent (retrying on ErrQueueFull, which is the
// transport's back-pressure) and the clock stops when the last one has been
// received. ns/op is per message.
func benchSend(b *testing.B, m zab.Message, opts ...func(*Config)) {
	a := newTransport(b, 1, opts...)
	r := newTransport(b, 2, opts...)
	connect(a, r)
	m.From, m.To = 1, 2
	// Warm up: connection established.
	require.NoError(b, a.Send(m))
	recvN(b, r, 1, wait)

	done := make(chan int)
	go func() {
		n := 0
		for range b.N {
			if _, ok := <-r.Receive(); !ok {
				break
			}
			n++
		}
		done <- n
	}()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		m.Zxid = zab.Zxid(i)
		for {
			err := a.Send(m)
			if err == nil {
				break
			}
			if !errors.Is(err, zab.ErrQueueFull) {
				b.Fatal(err)
			}
			runtime.Gosched()
		}
	}
	var got int
	select {
	case got = <-done:
	case <-time.After(30 * time.Second):
		b.Fatal("receiver stalled")
	}
	elapsed := time.Since(start)
	b.StopTimer()
	require.Equal(b, b.N, got)
	s := a.Stats()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(s.MessagesSent)/float64(max(s.FramesSent, 1)), "msgs/frame")
	b.ReportMetric(float64(s.BytesSent)/float64(max(s.MessagesSent, 1)), "wire-B/msg")
}

// BenchmarkSendSmall: heartbeat/ack-sized messages (no entries).
func BenchmarkSendSmall(b *testing.B) {
	benchSend(b, zab.Message{Type: 9, Epoch: 3})
}

// BenchmarkSendProposal1KiB: a proposal carrying one 1 KiB entry.
func BenchmarkSendProposal1KiB(b *testing.B) {
	benchSend(b, zab.Message{Type: 8, Epoch: 3, Entries: []zab.Entry{{Zxid: 1, Data: make([]byte, 1024)}}})
}

// BenchmarkSendSmallAuth: as BenchmarkSendSmall with a secret key: every
// frame is sealed with AES-256-GCM (16 bytes of tag per frame, and the
// cost of sealing and opening).
func BenchmarkSendSmallAuth(b *testing.B) {
	benchSend(b, zab.Message{Type: 9, Epoch: 3}, withKey(key1))
}

// BenchmarkSendProposal1KiBAuth: BenchmarkSendProposal1KiB with sealed
// frames.
func BenchmarkSendProposal1KiBAuth(b *testing.B) {
	benchSend(b, zab.Message{Type: 8, Epoch: 3, Entries: []zab.Entry{{Zxid: 1, Data: make([]byte, 1024)}}}, withKey(key1))
}

// BenchmarkSealOpen64KiB: sealing and opening one 64 KiB frame, the
// cipher's own throughput (B/s is payload).
func BenchmarkSealOpen64KiB(b *testing.B) {
	s, o := fuzzSession(b)
	frame := make([]byte, HeaderSize+64<<10)
	PutHeader(frame, Header{Version: Version, Kind: KindBatch, Length: 64 << 10})
	b.SetBytes(64 << 10)
	b.ReportAllocs()
	for b.Loop() {
		sealed, err := s.seal(frame)
		if err != nil {
			b.Fatal(err)
		}
		h, _ := ParseHeader(sealed, 1<<20)
		if _, err := o.open(h, sealed[HeaderSize:]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeBatch(b *testing.B) {
	msgs := sampleMessages(64)
	enc := NewBatchEncoder(16 << 20)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := enc.Encode(msgs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(msgs))/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkDecodeBatch(b *testing.B) {
	msgs := sampleMessages(64)
	frame, _, err := NewBatchEncoder(16 << 20).Encode(msgs)
	require.NoError(b, err)
	payload := append([]byte(nil), frame[HeaderSize:]...)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeBatch(payload); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(msgs))/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkRoundTripLatency: one message out and one back, sequentially, so
// ns/op is the loopback round-trip time through both transports (two
// frames, no batching).
func BenchmarkRoundTripLatency(b *testing.B) {
	a, r := newTransport(b, 1), newTransport(b, 2)
	connect(a, r)
	echoDone := make(chan struct{})
	go func() {
		defer close(echoDone)
		for m := range r.Receive() {
			m.From, m.To = 2, 1
			if r.Send(m) != nil {
				return
			}
		}
	}()
	ping := zab.Message{Type: 13, From: 1, To: 2}
	require.NoError(b, a.Send(ping))
	recvN(b, a, 1, wait)
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Send(ping); err != nil {
			b.Fatal(err)
		}
		select {
		case <-a.Receive():
		case <-time.After(wait):
			b.Fatal("no echo")
		}
	}
	require.NoError(b, r.Close())
	<-echoDone
}

// BenchmarkSendSnapChunk1MiB: snapshot chunks of 1 MiB (zab's default
// MaxMsgBytes), as a leader streams them to a learner; B/s is chunk bytes.
func BenchmarkSendSnapChunk1MiB(b *testing.B) {
	b.SetBytes(1 << 20)
	benchSend(b, zab.Message{Type: zab.MsgSnapChunk, Epoch: 3, Seq: 1, Total: 1 << 30, Snap: make([]byte, 1<<20)})
}
