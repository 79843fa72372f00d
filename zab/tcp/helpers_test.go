package tcp

import (
	"bytes"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coord-dev/coord/zab"
	"github.com/stretchr/testify/require"
)

// eventually waits for cond with a deadline; the poll interval only bounds
// latency, correctness never depends on it. It polls on the calling
// goroutine (unlike require.Eventually) so goroutine counts stay exact.
func eventually(t testing.TB, within time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			require.FailNowf(t, "condition not met in time", format, args...)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// logBuf is a concurrency-safe log sink for asserting on log lines.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuf) has(s string) bool { return strings.Contains(l.String(), s) }

func (l *logBuf) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newTransport starts a transport on 127.0.0.1:0, closed at test end.
func newTransport(t testing.TB, id zab.PeerID, opts ...func(*Config)) *Transport {
	t.Helper()
	cfg := DefaultConfig(id)
	cfg.DialTimeout = time.Second
	cfg.HandshakeTimeout = time.Second
	cfg.ReconnectBackoffMin = 5 * time.Millisecond
	cfg.ReconnectBackoffMax = 50 * time.Millisecond
	for _, o := range opts {
		o(&cfg)
	}
	tr, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func withKey(k string) func(*Config) { return func(c *Config) { c.SecretKey = []byte(k) } }

func withLog(l *logBuf) func(*Config) { return func(c *Config) { c.Logger = l.logger() } }

// connect tells each transport the address of every other.
func connect(trs ...*Transport) {
	for _, a := range trs {
		for _, b := range trs {
			if a != b {
				a.SetPeer(b.ID(), b.Addr().String())
			}
		}
	}
}

// recvN receives n messages or fails after within.
func recvN(t testing.TB, tr *Transport, n int, within time.Duration) []zab.Message {
	t.Helper()
	out := make([]zab.Message, 0, n)
	timer := time.NewTimer(within)
	defer timer.Stop()
	for len(out) < n {
		select {
		case m, ok := <-tr.Receive():
			if !ok {
				t.Fatalf("receive channel closed after %d of %d messages", len(out), n)
			}
			out = append(out, m)
		case <-timer.C:
			t.Fatalf("received %d of %d messages within %v", len(out), n, within)
		}
	}
	return out
}

// noMessage asserts nothing is waiting on tr's Receive channel.
func noMessage(t testing.TB, tr *Transport) {
	t.Helper()
	select {
	case m := <-tr.Receive():
		t.Fatalf("unexpected message delivered: %+v", m)
	default:
	}
	require.Zero(t, tr.Stats().MessagesReceived, "MessagesReceived")
}

// sendRetry sends m, retrying while the queue is full, until within passes.
func sendRetry(t testing.TB, tr *Transport, m zab.Message, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := tr.Send(m)
		if err == nil {
			return
		}
		if !errors.Is(err, zab.ErrQueueFull) || time.Now().After(deadline) {
			t.Fatalf("send: %v", err)
		}
		runtime.Gosched()
	}
}
