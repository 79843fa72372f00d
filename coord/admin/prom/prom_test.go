package prom_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/coord/admin"
	"github.com/coord-dev/coord/coord/admin/prom"
	"github.com/coord-dev/coord/internal/testcluster"
)

// sample is one scraped value: its family's type and its labels.
type sample struct {
	typ    string
	labels map[string]string
	value  float64
}

// scrape fetches url and parses the text exposition format.
func scrape(t *testing.T, url string) map[string][]sample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	require.NoError(t, err, "exposition:\n%s", body)
	out := map[string][]sample{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			s := sample{typ: f.GetType().String(), labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			switch {
			case m.GetCounter() != nil:
				s.value = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				s.value = m.GetGauge().GetValue()
			}
			out[name] = append(out[name], s)
		}
	}
	return out
}

// one returns the value of the single sample of name, checking its type and
// its node label.
func one(t *testing.T, ms map[string][]sample, name, typ string, node uint64) float64 {
	t.Helper()
	s, ok := ms[name]
	require.True(t, ok, "metric %s missing", name)
	require.Len(t, s, 1, name)
	require.Equal(t, typ, s[0].typ, name)
	require.Equal(t, strconv.FormatUint(node, 10), s[0].labels["node"], name)
	return s[0].value
}

// TestMetricsScrapedFromTheAdminHandler scrapes a leader's and a
// follower's /metrics (prom.Handler mounted in coord/admin) and checks the
// parsed values against the cluster's state.
func TestMetricsScrapedFromTheAdminHandler(t *testing.T) {
	nodes := testcluster.Start(t, "prom-scrape", 3)
	l := testcluster.Leader(t, nodes)
	leader, follower := nodes[l], nodes[(l+1)%3]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 5 {
		_, err := leader.Create(ctx, "/m"+strconv.Itoa(i), []byte("v"), coord.Persistent)
		require.NoError(t, err)
	}
	require.NoError(t, follower.Sync(ctx))

	for _, n := range []*coord.Node{leader, follower} {
		srv := httptest.NewServer(admin.New(n, admin.Options{Metrics: prom.Handler(n)}))
		ms := scrape(t, srv.URL+"/metrics")
		srv.Close()
		st := n.Stats()
		id := n.ID()
		isLeader := n == leader
		assert.Equal(t, 1.0, one(t, ms, "coord_up", "GAUGE", id))
		assert.Equal(t, 1.0, one(t, ms, "coord_serving", "GAUGE", id))
		assert.Equal(t, map[bool]float64{true: 1, false: 0}[isLeader], one(t, ms, "coord_leader", "GAUGE", id))
		assert.Equal(t, float64(leader.ID()), one(t, ms, "coord_leader_id", "GAUGE", id))
		assert.Equal(t, 3.0, one(t, ms, "coord_voters", "GAUGE", id))
		assert.GreaterOrEqual(t, one(t, ms, "coord_znodes", "GAUGE", id), 6.0)
		assert.GreaterOrEqual(t, one(t, ms, "coord_sessions", "GAUGE", id), 1.0)
		assert.GreaterOrEqual(t, one(t, ms, "coord_commits_total", "COUNTER", id), 5.0)
		assert.GreaterOrEqual(t, one(t, ms, "coord_zxid_last", "GAUGE", id), float64(st.Applied))
		assert.Positive(t, one(t, ms, "coord_zxid_applied", "GAUGE", id))
		assert.Positive(t, one(t, ms, "coord_transport_messages_sent_total", "COUNTER", id))
		for _, c := range []string{"auth_failures", "duplicate_ids", "handshake_failures", "send_drops", "queue_full", "bad_frames", "forged_drops", "dial_failures"} {
			one(t, ms, "coord_transport_"+c+"_total", "COUNTER", id)
		}
		assert.Equal(t, 3.0, one(t, ms, "coord_gossip_alive_members", "GAUGE", id))
		one(t, ms, "coord_gossip_auth_failures_total", "COUNTER", id)
		one(t, ms, "coord_watches", "GAUGE", id)
		one(t, ms, "coord_loop_busy_ratio", "GAUGE", id)
		// testcluster lists Voters: autopilot is off, with the target it would keep.
		assert.Equal(t, 0.0, one(t, ms, "coord_autopilot_enabled", "GAUGE", id))
		assert.Equal(t, 3.0, one(t, ms, "coord_autopilot_target_voters", "GAUGE", id))
		one(t, ms, "coord_autopilot_healthy_voters", "GAUGE", id)
		assert.Equal(t, 0.0, one(t, ms, "coord_autopilot_changes_total", "COUNTER", id))
		one(t, ms, "coord_autopilot_failures_total", "COUNTER", id)
		require.Len(t, ms["coord_fsync_seconds"], 2)
		roles := map[string]float64{}
		for _, s := range ms["coord_role"] {
			roles[s.labels["role"]] = s.value
		}
		assert.Equal(t, map[string]float64{"LOOKING": 0, "FOLLOWING": map[bool]float64{true: 0, false: 1}[isLeader],
			"LEADING": map[bool]float64{true: 1, false: 0}[isLeader], "OBSERVING": 0}, roles)
		if isLeader {
			require.Len(t, ms["coord_follower_synced"], 2, "one per follower")
			for _, s := range ms["coord_follower_synced"] {
				assert.Equal(t, 1.0, s.value, "follower %s synced", s.labels["peer"])
			}
		} else {
			assert.Empty(t, ms["coord_follower_lag"], "followers report no learners")
		}
	}
}

// TestCollectorIsConsistent registers collectors of several nodes in one
// pedantic registry: descriptions match what is collected, and the node
// label keeps them apart.
func TestCollectorIsConsistent(t *testing.T) {
	nodes := testcluster.Start(t, "prom-pedantic", 3)
	reg := prometheus.NewPedanticRegistry()
	for _, n := range nodes {
		require.NoError(t, reg.Register(prom.NewCollector(n)))
	}
	fams, err := reg.Gather()
	require.NoError(t, err)
	var up int
	for _, f := range fams {
		if f.GetName() == "coord_up" {
			up = len(f.GetMetric())
		}
	}
	require.Equal(t, 3, up)

	// A closed node is down, and still scrapes.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = nodes[0].Close(ctx)
	srv := httptest.NewServer(prom.Handler(nodes[0]))
	defer srv.Close()
	ms := scrape(t, srv.URL)
	assert.Equal(t, 0.0, one(t, ms, "coord_up", "GAUGE", nodes[0].ID()))
	assert.Equal(t, 0.0, one(t, ms, "coord_serving", "GAUGE", nodes[0].ID()))
}

// TestSnapStreamStatsAndMetrics joins an observer to a cluster whose log
// is compacted past its start and whose snapshot is larger than one
// message, so the leader streams it: the observer's and the leader's Stats
// count the streamed bytes, and their metrics say the same.
func TestSnapStreamStatsAndMetrics(t *testing.T) {
	cfgs := testcluster.Configs(t, "prom-snapstream", 3, false)
	for i := range cfgs {
		cfgs[i].SnapshotEvery = 10
	}
	nodes := testcluster.Join(t, cfgs...)
	leader := nodes[testcluster.Leader(t, nodes)]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	big := bytes.Repeat([]byte("s"), 500<<10)
	for i := range 4 { // 2 MB of data: more than one 1 MiB message
		_, err := leader.Create(ctx, "/big"+strconv.Itoa(i), big, coord.Persistent)
		require.NoError(t, err)
	}
	// Enough writes for two snapshots on every voter: the second
	// compacts the log past its start, so a new learner needs a SNAP.
	for i := range 30 {
		_, err := leader.Create(ctx, "/small"+strconv.Itoa(i), nil, coord.Persistent)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if n.Stats().Snapshots < 2 {
				return false
			}
		}
		return true
	}, 30*time.Second, 10*time.Millisecond, "every voter took two snapshots")

	obs := testcluster.Join(t, testcluster.Observer(t, cfgs[0], 10))[0]
	require.NoError(t, obs.Sync(ctx))
	_, _, err := obs.Get(ctx, "/small29")
	require.NoError(t, err)

	ob, ls := obs.Stats().SnapStreams, leader.Stats().SnapStreams
	assert.Greater(t, ob.BytesReceived, uint64(2_000_000), "the observer received the snapshot streamed")
	assert.False(t, ob.Receiving, "the observer installed it")
	assert.Zero(t, ob.BytesSent)
	assert.GreaterOrEqual(t, ls.BytesSent, ob.BytesReceived, "the leader sent what the observer received")
	assert.Zero(t, ls.Running+ls.Queued, "no stream runs or waits once the observer serves")

	for _, c := range []struct {
		n  *coord.Node
		ss coord.SnapStreamStats
	}{{obs, ob}, {leader, ls}} {
		srv := httptest.NewServer(prom.Handler(c.n))
		ms := scrape(t, srv.URL)
		srv.Close()
		id := c.n.ID()
		st := c.n.Stats().SnapStreams
		assert.Equal(t, float64(st.BytesReceived), one(t, ms, "coord_snap_stream_bytes_received_total", "COUNTER", id))
		assert.Equal(t, float64(st.BytesSent), one(t, ms, "coord_snap_stream_bytes_sent_total", "COUNTER", id))
		assert.GreaterOrEqual(t, one(t, ms, "coord_snap_stream_bytes_sent_total", "COUNTER", id), float64(c.ss.BytesSent))
		assert.Equal(t, 0.0, one(t, ms, "coord_snap_streams_running", "GAUGE", id))
		assert.Equal(t, 0.0, one(t, ms, "coord_snap_streams_queued", "GAUGE", id))
		assert.Equal(t, 0.0, one(t, ms, "coord_snap_receiving", "GAUGE", id))
		require.Len(t, ms["coord_snap_receiving_bytes"], 2)
	}
}
