package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/coord/admin"
	"github.com/coord-dev/coord/internal/testcluster"
	"github.com/coord-dev/coord/zab"
	"github.com/coord-dev/coord/zab/tcp"
)

// get fetches path from srv and returns the status code and body.
func get(t *testing.T, srv *httptest.Server, method, path string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, nil)
	require.NoError(t, err)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(b, &v), "body %s", b)
	return v
}

// waitStatus polls path until it answers code.
func waitStatus(t *testing.T, srv *httptest.Server, path string, code int) []byte {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, b := get(t, srv, http.MethodGet, path)
		if got == code {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: status %d, want %d; body %s", path, got, code, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHandlerHealthyCluster: on a follower of a healthy 3-node cluster
// every endpoint answers 200 with JSON of the documented shape.
func TestHandlerHealthyCluster(t *testing.T) {
	nodes := testcluster.Start(t, "admin-healthy", 3)
	l := testcluster.Leader(t, nodes)
	f := nodes[(l+1)%3]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := f.Create(ctx, "/a", []byte("x"), coord.Persistent)
	require.NoError(t, err)

	srv := httptest.NewServer(admin.New(f, admin.Options{}))
	defer srv.Close()

	code, b := get(t, srv, http.MethodGet, "/livez")
	require.Equal(t, http.StatusOK, code, "%s", b)
	hl := decode[admin.Health](t, b)
	assert.Equal(t, admin.Health{Status: "ok", ID: f.ID(), Role: "FOLLOWING", Running: true, Serving: true,
		Leader: nodes[l].ID()}, hl)

	code, b = get(t, srv, http.MethodGet, "/readyz")
	require.Equal(t, http.StatusOK, code, "%s", b)
	require.Equal(t, "ok", decode[admin.Health](t, b).Status)

	code, b = get(t, srv, http.MethodGet, "/stats")
	require.Equal(t, http.StatusOK, code)
	st := decode[coord.Stats](t, b)
	assert.Equal(t, f.ID(), st.ID)
	assert.Equal(t, []uint64{1, 2, 3}, st.Voters)
	assert.True(t, st.Serving)
	assert.GreaterOrEqual(t, st.Znodes, 2)
	assert.Positive(t, st.Commits)
	assert.Positive(t, st.Transport.MessagesReceived)
	assert.Equal(t, 3, st.Gossip.Alive)
	// Numbers, not strings: the raw JSON keeps its types.
	raw := decode[map[string]any](t, b)
	for _, k := range []string{"last_zxid", "committed", "applied", "commits", "znodes", "fsync_p50_ns", "fsync_p99_ns", "loop_busy"} {
		assert.IsType(t, float64(0), raw[k], "stats field %s", k)
	}
	for _, k := range []string{"auth_failures", "handshake_failures", "send_drops", "queue_full", "bad_frames"} {
		assert.IsType(t, float64(0), raw["transport"].(map[string]any)[k], "transport field %s", k)
	}
	assert.IsType(t, float64(0), raw["gossip"].(map[string]any)["auth_failures"])

	code, b = get(t, srv, http.MethodGet, "/members")
	require.Equal(t, http.StatusOK, code)
	ms := decode[[]admin.Member](t, b)
	require.Len(t, ms, 3)
	for i, m := range ms {
		assert.Equal(t, uint64(i+1), m.ID)
		assert.Equal(t, "voter", m.Role)
		assert.Equal(t, "alive", m.State)
		assert.NotEmpty(t, m.ReplicationAddr)
	}

	code, b = get(t, srv, http.MethodGet, "/leader")
	require.Equal(t, http.StatusOK, code)
	ld := decode[admin.Leader](t, b)
	assert.Equal(t, nodes[l].ID(), ld.ID)
	assert.Positive(t, ld.Epoch)
	assert.False(t, ld.Self)

	code, _ = get(t, srv, http.MethodHead, "/readyz")
	assert.Equal(t, http.StatusOK, code)
	code, _ = get(t, srv, http.MethodPost, "/readyz")
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	code, _ = get(t, srv, http.MethodGet, "/nothing")
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = get(t, srv, http.MethodGet, "/metrics")
	assert.Equal(t, http.StatusNotFound, code, "no metrics unless Options.Metrics")
}

// TestHandlerReadinessFlips: a node that loses its quorum stays live but
// is no longer ready (and has no leader); once closed it is not live.
func TestHandlerReadinessFlips(t *testing.T) {
	nodes := testcluster.Start(t, "admin-flip", 3)
	n := nodes[0]
	srv := httptest.NewServer(admin.New(n, admin.Options{Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "metrics here\n")
	})}))
	defer srv.Close()
	waitStatus(t, srv, "/readyz", http.StatusOK)
	code, b := get(t, srv, http.MethodGet, "/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "metrics here\n", string(b))

	nodes[1].Shutdown()
	nodes[2].Shutdown()
	b = waitStatus(t, srv, "/readyz", http.StatusServiceUnavailable)
	hl := decode[admin.Health](t, b)
	assert.True(t, hl.Running)
	assert.False(t, hl.Serving)
	assert.Contains(t, hl.Status, "not serving")
	code, b = get(t, srv, http.MethodGet, "/livez")
	require.Equal(t, http.StatusOK, code, "a node without quorum is still live: %s", b)
	waitStatus(t, srv, "/leader", http.StatusServiceUnavailable)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.Close(ctx)
	code, b = get(t, srv, http.MethodGet, "/livez")
	require.Equal(t, http.StatusServiceUnavailable, code)
	hl = decode[admin.Health](t, b)
	assert.False(t, hl.Running)
	assert.True(t, strings.HasPrefix(hl.Status, "not running"), hl.Status)
	code, _ = get(t, srv, http.MethodGet, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	// Stats still answer after Close.
	code, _ = get(t, srv, http.MethodGet, "/stats")
	require.Equal(t, http.StatusOK, code)
}

// TestHandlerCountsAuthFailures: a replication peer with the wrong key
// shows in the transport's authentication failures, and a gossip node
// with the wrong key in the gossip's.
func TestHandlerCountsAuthFailures(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	cfgs := testcluster.Configs(t, "admin-auth", 3, false)
	for i := range cfgs {
		cfgs[i].SecretKey = key
	}
	nodes := testcluster.Join(t, cfgs...)
	n := nodes[0]
	srv := httptest.NewServer(admin.New(n, admin.Options{}))
	defer srv.Close()

	var replAddr string
	for _, m := range n.Members() {
		if m.ID == n.ID() {
			replAddr = m.ReplicationAddr
		}
	}
	require.NotEmpty(t, replAddr)
	tc := tcp.DefaultConfig(99)
	tc.BindAddr, tc.Cluster, tc.SecretKey = "127.0.0.1:0", cfgs[0].Cluster, []byte("another key, 32 bytes long......")
	tr, err := tcp.New(tc)
	require.NoError(t, err)
	defer tr.Close()
	tr.SetPeer(zab.PeerID(n.ID()), replAddr)
	require.NoError(t, tr.Send(zab.Message{Type: zab.MsgApp, From: 99, To: zab.PeerID(n.ID())}))

	bad := testcluster.Observer(t, cfgs[0], 98)
	bad.SecretKey = []byte("another key, 32 bytes long......")
	bad.JoinTimeout = 300 * time.Millisecond
	_, err = coord.Join(bad)
	require.Error(t, err, "a node with the wrong key joins nothing")

	deadline := time.Now().Add(10 * time.Second)
	for {
		_, b := get(t, srv, http.MethodGet, "/stats")
		st := decode[coord.Stats](t, b)
		if st.Transport.AuthFailures > 0 && st.Gossip.AuthFailures > 0 {
			assert.GreaterOrEqual(t, st.Transport.HandshakeFailures, st.Transport.AuthFailures)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("authentication failures not counted: transport %+v gossip %+v", st.Transport, st.Gossip)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHandlerLivenessFailsOnFailStop: a node whose replication stops on
// its own (its data directory is gone) fails liveness with the reason.
func TestHandlerLivenessFailsOnFailStop(t *testing.T) {
	cfgs := testcluster.Configs(t, "admin-failstop", 3, true)
	nodes := testcluster.Join(t, cfgs...)
	l := testcluster.Leader(t, nodes)
	vi := (l + 1) % 3
	victim := nodes[vi]
	srv := httptest.NewServer(admin.New(victim, admin.Options{}))
	defer srv.Close()
	waitStatus(t, srv, "/livez", http.StatusOK)

	// The disk goes: the directory becomes a file, and the next epoch,
	// which every voter must persist, cannot be written.
	dir := cfgs[vi].DataDir
	require.NoError(t, os.RemoveAll(dir))
	require.NoError(t, os.WriteFile(dir, []byte("not a directory"), 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, nodes[l].Close(ctx))

	b := waitStatus(t, srv, "/livez", http.StatusServiceUnavailable)
	hl := decode[admin.Health](t, b)
	assert.False(t, hl.Running)
	assert.Contains(t, hl.Error, "not a directory")
	code, _ := get(t, srv, http.MethodGet, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
}
