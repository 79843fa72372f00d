// Package prom exports a coord node's Stats as Prometheus metrics through
// github.com/prometheus/client_golang, the ecosystem's standard client. It
// is a package of its own so that a service which does not use Prometheus
// does not import client_golang: coord and coord/admin do not.
//
// Register a Collector with your own registry,
//
//	prometheus.MustRegister(prom.NewCollector(node))
//
// or serve a node's metrics alone with Handler, for example as the
// /metrics endpoint of coord/admin:
//
//	admin.New(node, admin.Options{Metrics: prom.Handler(node)})
//
// Every metric carries a constant label node (the node's id), so several
// nodes in one process register side by side. Metrics are read from
// Node.Stats at each scrape; a scrape never waits on the cluster.
//
// Metrics (namespace coord):
//
//	coord_up                          1 while the node is open and replicating
//	coord_serving                     1 while synced with an established leader
//	coord_leader                      1 while this node leads
//	coord_leader_id                   the id of the leader this node follows (0: none)
//	coord_role{role}                  1 for the node's role (LOOKING, FOLLOWING, LEADING, OBSERVING)
//	coord_epoch                       the current epoch
//	coord_zxid_last                   last zxid in the log
//	coord_zxid_committed              last zxid known committed
//	coord_zxid_applied                last zxid applied to the tree
//	coord_commits_total               txns applied since the node started
//	coord_znodes                      znodes in the tree
//	coord_sessions                    sessions in the replicated table
//	coord_watches                     watch registrations on this node
//	coord_voters                      voters in the configuration in force
//	coord_snapshots_total             snapshots taken since the node started
//	coord_loop_busy_ratio             fraction of time the replication loop was busy
//	coord_fsync_seconds{quantile}     recent log fsync latency (0.5, 0.99)
//	coord_send_queue_depth{peer}      replication messages queued for a peer
//	coord_follower_lag{peer}          on the leader: txns a learner has not acknowledged
//	coord_follower_synced{peer}       on the leader: 1 once a learner is synced
//	coord_transport_*_total           replication transport counters: messages_sent,
//	                                  bytes_sent, messages_received, bytes_received,
//	                                  queue_full, send_drops, handshake_failures,
//	                                  auth_failures, duplicate_ids, bad_frames,
//	                                  forged_drops, dial_failures
//	coord_transport_connected_peers   peers with an open outbound connection
//	coord_gossip_members              members gossip lists (this node included)
//	coord_gossip_alive_members        those of them alive
//	coord_gossip_*_total              gossip counters: auth_failures, vetoed_peers,
//	                                  conflicts, coalesced_events
//	coord_autopilot_enabled           1 when autopilot runs on this node
//	coord_autopilot_target_voters     the number of voters autopilot keeps
//	coord_autopilot_healthy_voters    on the leader: voters alive and synced
//	coord_autopilot_changes_total     voter changes autopilot committed (as leader)
//	coord_autopilot_failures_total    voter changes autopilot tried and failed
//	coord_snap_streams_running        on the leader: snapshot streams to learners running
//	coord_snap_streams_queued         on the leader: learners waiting their turn for one
//	coord_snap_stream_bytes_sent_total      snapshot bytes streamed as a leader
//	coord_snap_stream_bytes_received_total  snapshot bytes received as a learner
//	coord_snap_receiving              1 while this node receives a snapshot
//	coord_snap_receiving_bytes{part}  of that snapshot: bytes held and total
package prom

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/coord-dev/coord/coord"
)

// roles are the values of coord_role's role label.
var roles = [...]string{"LOOKING", "FOLLOWING", "LEADING", "OBSERVING"}

// metric is one exported value: how it reads Stats.
type metric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*coord.Stats) float64
}

// Collector is a prometheus.Collector over one node's Stats.
type Collector struct {
	n       *coord.Node
	scalars []metric
	role    *prometheus.Desc
	fsync   *prometheus.Desc
	queue   *prometheus.Desc
	lag     *prometheus.Desc
	synced  *prometheus.Desc
	recv    *prometheus.Desc
}

// NewCollector returns a Collector for n.
func NewCollector(n *coord.Node) *Collector {
	labels := prometheus.Labels{"node": strconv.FormatUint(n.ID(), 10)}
	desc := func(name, help string, varLabels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("coord", "", name), help, varLabels, labels)
	}
	c := &Collector{
		n:      n,
		role:   desc("role", "1 for the node's role in replication.", "role"),
		fsync:  desc("fsync_seconds", "Recent log fsync latency (0 without a DataDir).", "quantile"),
		queue:  desc("send_queue_depth", "Replication messages queued for a peer.", "peer"),
		lag:    desc("follower_lag", "On the leader: txns of this epoch a learner has not acknowledged (-1: none yet).", "peer"),
		synced: desc("follower_synced", "On the leader: 1 once a learner is synced with this epoch.", "peer"),
	}
	gauge := func(name, help string, f func(*coord.Stats) float64) {
		c.scalars = append(c.scalars, metric{desc(name, help), prometheus.GaugeValue, f})
	}
	counter := func(name, help string, f func(*coord.Stats) uint64) {
		c.scalars = append(c.scalars, metric{desc(name, help), prometheus.CounterValue,
			func(s *coord.Stats) float64 { return float64(f(s)) }})
	}
	gauge("up", "1 while the node is open and its replication runs.", func(s *coord.Stats) float64 { return b2f(s.Running) })
	gauge("serving", "1 while the node is synced with an established leader (or is one).", func(s *coord.Stats) float64 { return b2f(s.Serving) })
	gauge("leader", "1 while this node leads.", func(s *coord.Stats) float64 { return b2f(s.Leader != 0 && s.Leader == s.ID) })
	gauge("leader_id", "The id of the leader this node follows (0 while there is none).", func(s *coord.Stats) float64 { return float64(s.Leader) })
	gauge("epoch", "The current epoch.", func(s *coord.Stats) float64 { return float64(s.Epoch) })
	gauge("zxid_last", "The last zxid in the log.", func(s *coord.Stats) float64 { return float64(s.LastZxid) })
	gauge("zxid_committed", "The last zxid known committed.", func(s *coord.Stats) float64 { return float64(s.Committed) })
	gauge("zxid_applied", "The last zxid applied to the local tree.", func(s *coord.Stats) float64 { return float64(s.Applied) })
	counter("commits_total", "Txns applied to the local tree since the node started.", func(s *coord.Stats) uint64 { return s.Commits })
	gauge("znodes", "Znodes in the tree.", func(s *coord.Stats) float64 { return float64(s.Znodes) })
	gauge("sessions", "Sessions in the replicated table.", func(s *coord.Stats) float64 { return float64(s.Sessions) })
	gauge("watches", "Watch registrations on this node.", func(s *coord.Stats) float64 { return float64(s.Watches) })
	gauge("voters", "Voters in the configuration in force on this node.", func(s *coord.Stats) float64 { return float64(len(s.Voters)) })
	counter("snapshots_total", "Snapshots taken since the node started.", func(s *coord.Stats) uint64 { return uint64(s.Snapshots) })
	gauge("loop_busy_ratio", "Fraction of time the replication loop was busy.", func(s *coord.Stats) float64 { return s.LoopBusy })
	tr := func(name, help string, f func(*coord.TransportStats) uint64) {
		counter("transport_"+name+"_total", help, func(s *coord.Stats) uint64 { return f(&s.Transport) })
	}
	tr("messages_sent", "Replication messages written.", func(t *coord.TransportStats) uint64 { return t.MessagesSent })
	tr("bytes_sent", "Replication frame bytes written.", func(t *coord.TransportStats) uint64 { return t.BytesSent })
	tr("messages_received", "Replication messages received.", func(t *coord.TransportStats) uint64 { return t.MessagesReceived })
	tr("bytes_received", "Replication frame bytes read.", func(t *coord.TransportStats) uint64 { return t.BytesReceived })
	tr("queue_full", "Replication messages refused for a full send queue.", func(t *coord.TransportStats) uint64 { return t.QueueFull })
	tr("send_drops", "Replication messages accepted for sending and then lost.", func(t *coord.TransportStats) uint64 { return t.SendDrops })
	tr("handshake_failures", "Failed replication connection handshakes, inbound and outbound.", func(t *coord.TransportStats) uint64 { return t.HandshakeFailures })
	tr("auth_failures", "Replication handshakes that failed authentication (SecretKey), and encrypted frames that failed to open.", func(t *coord.TransportStats) uint64 { return t.AuthFailures })
	tr("duplicate_ids", "Replication handshakes refused because another live process uses the dialer's node id.", func(t *coord.TransportStats) uint64 { return t.DuplicateIDs })
	tr("bad_frames", "Replication connections closed for a malformed frame.", func(t *coord.TransportStats) uint64 { return t.BadFrames })
	tr("forged_drops", "Replication messages dropped for a forged sender or recipient.", func(t *coord.TransportStats) uint64 { return t.ForgedDrops })
	tr("dial_failures", "Failed replication connection attempts.", func(t *coord.TransportStats) uint64 { return t.DialFailures })
	gauge("transport_connected_peers", "Peers with an open outbound replication connection.", func(s *coord.Stats) float64 { return float64(s.Transport.ConnectedPeers) })
	gauge("gossip_members", "Members gossip lists, this node included.", func(s *coord.Stats) float64 { return float64(s.Gossip.Members) })
	gauge("gossip_alive_members", "Members gossip sees alive, this node included.", func(s *coord.Stats) float64 { return float64(s.Gossip.Alive) })
	gs := func(name, help string, f func(*coord.GossipStats) uint64) {
		counter("gossip_"+name+"_total", help, func(s *coord.Stats) uint64 { return f(&s.Gossip) })
	}
	gs("auth_failures", "Gossip packets refused for a wrong Cluster label or SecretKey.", func(g *coord.GossipStats) uint64 { return g.AuthFailures })
	gs("vetoed_peers", "Gossip peers refused for bad or foreign metadata.", func(g *coord.GossipStats) uint64 { return g.VetoedPeers })
	gs("conflicts", "Node ids seen at two gossip addresses.", func(g *coord.GossipStats) uint64 { return g.Conflicts })
	gs("coalesced_events", "Membership events merged because the consumer was behind.", func(g *coord.GossipStats) uint64 { return g.CoalescedEvents })
	gauge("autopilot_enabled", "1 when autopilot runs on this node.", func(s *coord.Stats) float64 { return b2f(s.Autopilot.Enabled) })
	gauge("autopilot_target_voters", "The number of voters autopilot keeps.", func(s *coord.Stats) float64 { return float64(s.Autopilot.Target) })
	gauge("autopilot_healthy_voters", "On the leader, at autopilot's last evaluation: voters alive in gossip and synced.", func(s *coord.Stats) float64 { return float64(s.Autopilot.HealthyVoters) })
	counter("autopilot_changes_total", "Voter changes autopilot committed while this node led.", func(s *coord.Stats) uint64 { return s.Autopilot.Changes })
	counter("autopilot_failures_total", "Voter changes autopilot tried and failed while this node led.", func(s *coord.Stats) uint64 { return s.Autopilot.Failures })
	gauge("snap_streams_running", "On the leader: snapshot streams to learners running now.", func(s *coord.Stats) float64 { return float64(s.SnapStreams.Running) })
	gauge("snap_streams_queued", "On the leader: learners waiting their turn for a snapshot stream.", func(s *coord.Stats) float64 { return float64(s.SnapStreams.Queued) })
	counter("snap_stream_bytes_sent_total", "Snapshot bytes streamed to learners while this node led (resent chunks included).", func(s *coord.Stats) uint64 { return s.SnapStreams.BytesSent })
	counter("snap_stream_bytes_received_total", "Snapshot bytes received from a leader.", func(s *coord.Stats) uint64 { return s.SnapStreams.BytesReceived })
	gauge("snap_receiving", "1 while this node receives a snapshot from its leader.", func(s *coord.Stats) float64 { return b2f(s.SnapStreams.Receiving) })
	c.recv = desc("snap_receiving_bytes", "Of the snapshot this node receives: bytes held and total.", "part")
	return c
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.scalars {
		ch <- m.desc
	}
	for _, d := range []*prometheus.Desc{c.role, c.fsync, c.queue, c.lag, c.synced, c.recv} {
		ch <- d
	}
}

// Collect reads the node's Stats once and sends every metric.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.n.Stats()
	for _, m := range c.scalars {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(&s))
	}
	for _, r := range roles {
		ch <- prometheus.MustNewConstMetric(c.role, prometheus.GaugeValue, b2f(s.Role == r), r)
	}
	ch <- prometheus.MustNewConstMetric(c.fsync, prometheus.GaugeValue, s.FsyncP50.Seconds(), "0.5")
	ch <- prometheus.MustNewConstMetric(c.fsync, prometheus.GaugeValue, s.FsyncP99.Seconds(), "0.99")
	ch <- prometheus.MustNewConstMetric(c.recv, prometheus.GaugeValue, float64(s.SnapStreams.Held), "held")
	ch <- prometheus.MustNewConstMetric(c.recv, prometheus.GaugeValue, float64(s.SnapStreams.Total), "total")
	for id, q := range s.SendQueues {
		ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(q), strconv.FormatUint(id, 10))
	}
	for id, f := range s.Followers {
		peer := strconv.FormatUint(id, 10)
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(f.Lag), peer)
		ch <- prometheus.MustNewConstMetric(c.synced, prometheus.GaugeValue, b2f(f.Synced), peer)
	}
}

// Handler returns an http.Handler that serves n's metrics alone (a
// registry of its own holding NewCollector(n)) in the Prometheus
// exposition formats.
func Handler(n *coord.Node) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(n))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
