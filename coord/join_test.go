package coord

import (
	"bytes"
	"context"
	"expvar"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestJoinRefusesWrongKey(t *testing.T) {
	key := []byte("0123456789abcdef")
	c := startCluster(t, 3, func(cfg *Config) { cfg.SecretKey = key })
	ctx := ctxT(t)
	_, err := c.nodes[1].Create(ctx, "/secret", nil, Persistent)
	require.NoError(t, err)

	for name, k := range map[string][]byte{"wrong key": []byte("fedcba9876543210"), "no key": nil} {
		t.Run(name, func(t *testing.T) {
			var logs syncBuffer
			cfg := LocalConfig(4)
			cfg.Cluster = "test"
			cfg.Seeds = c.cfgs[1].Seeds
			cfg.Voters = []uint64{1, 2, 3}
			cfg.Role = RoleObserver
			cfg.SecretKey = k
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			jctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := JoinContext(jctx, cfg)
			if n != nil {
				n.Close(context.Background())
			}
			require.Error(t, err, "a node without the cluster's key must not join")
			t.Logf("refused: %v", err)
			for _, m := range c.nodes[1].Members() {
				require.NotEqual(t, uint64(4), m.ID, "the intruder appears in the membership")
			}
		})
	}
}

func TestJoinErrors(t *testing.T) {
	_, err := Join(Config{})
	require.ErrorIs(t, err, ErrInvalidConfig)

	// Two of three voters never come: Join says what is missing.
	cfg := LocalConfig(1)
	cfg.Voters = []uint64{1, 2, 3}
	cfg.JoinTimeout = 500 * time.Millisecond
	_, err = Join(cfg)
	require.ErrorIs(t, err, ErrNoQuorum)
	require.Contains(t, err.Error(), "1 of 3 voters [1 2 3] seen")
	require.Contains(t, err.Error(), "the configured Voters, not confirmed by any leader")
}

func TestCloseIsIdempotentAndStopsOperations(t *testing.T) {
	c := startCluster(t, 1, nil)
	n := c.nodes[1]
	ctx := ctxT(t)
	require.NoError(t, n.Close(ctx))
	require.NoError(t, n.Close(ctx))
	_, err := n.Create(ctx, "/x", nil, Persistent)
	require.ErrorIs(t, err, ErrClosed)
	_, _, err = n.Get(ctx, "/")
	require.ErrorIs(t, err, ErrClosed)
	delete(c.nodes, 1)
}

func TestStatsAndExpvar(t *testing.T) {
	// expvar's registry is process-wide and cannot forget: a fresh name per run.
	name := fmt.Sprintf("coord-test-stats-%d", time.Now().UnixNano())
	c := startCluster(t, 1, func(cfg *Config) { cfg.ExpvarName = name })
	ctx := ctxT(t)
	n := c.nodes[1]
	_, err := n.Create(ctx, "/s", nil, Persistent)
	require.NoError(t, err)
	st := n.Stats()
	require.Equal(t, "LEADING", st.Role)
	require.Equal(t, uint64(1), st.Leader)
	require.Equal(t, 2, st.Znodes)
	require.Equal(t, 1, st.Sessions, "the default session")
	require.Equal(t, st.Committed, st.Applied)
	v := expvar.Get(name)
	require.NotNil(t, v)
	require.Contains(t, v.String(), `"role":"LEADING"`)
	require.Contains(t, v.String(), `"running":true`)

	// A second node may not take the same name.
	cfg := LocalConfig(1)
	cfg.Voters = []uint64{1}
	cfg.ExpvarName = name
	_, err = Join(cfg)
	require.ErrorIs(t, err, ErrInvalidConfig)
}

func TestStatsShowFollowers(t *testing.T) {
	c := startCluster(t, 3, nil)
	ctx := ctxT(t)
	leader := c.leader()
	_, err := c.nodes[leader].Create(ctx, "/f", nil, Persistent)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st := c.nodes[leader].Stats()
		if len(st.Followers) != 2 {
			return false
		}
		for _, f := range st.Followers {
			if !f.Synced || f.Lag != 0 {
				return false
			}
		}
		return true
	}, 5*time.Second, 10*time.Millisecond, "the leader sees both followers synced with no lag")
}

// TestCloseLeavesNoGoroutines: a whole cluster's life, watches and sessions
// included, leaves no goroutine behind once every node is closed.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		c := startCluster(t, 3, withDataDirs(t))
		ctx := ctxT(t)
		n := c.nodes[1]
		_, err := n.Create(ctx, "/g", nil, Persistent)
		require.NoError(t, err)
		w, err := n.Watch(ctx, "/", true)
		require.NoError(t, err)
		_ = w
		s, err := c.nodes[2].Session(ctx, SessionOptions{})
		require.NoError(t, err)
		_, err = s.Create(ctx, "/g/e", nil, Ephemeral)
		require.NoError(t, err)
		_, _, _, err = c.nodes[3].GetW(ctx, "/g")
		require.NoError(t, err)
		for id, node := range c.nodes {
			require.NoError(t, node.Close(ctx))
			delete(c.nodes, id)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines before, %d after Close:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
