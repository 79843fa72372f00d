package coord

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"
	"unicode"

	"github.com/coord-dev/coord/internal/gossip"
	"github.com/coord-dev/coord/tree"
)

// ErrInvalidConfig is wrapped by every problem Config.Validate reports.
var ErrInvalidConfig = errors.New("coord: invalid config")

// Role is what a node does in the ensemble.
type Role uint8

const (
	// RoleVoter takes part in elections and quorums. It is the zero value.
	RoleVoter Role = iota
	// RoleObserver receives every committed change and serves reads but
	// never votes, so adding observers scales reads without slowing writes.
	RoleObserver
)

// String returns "voter" or "observer".
func (r Role) String() string {
	switch r {
	case RoleVoter:
		return "voter"
	case RoleObserver:
		return "observer"
	}
	return "Role(" + strconv.Itoa(int(r)) + ")"
}

// Limits that are not configurable but bound what Validate accepts.
const (
	// maxClusterLen keeps the cluster name well inside memberlist's
	// 255-byte label and the 512-byte gossip metadata it also travels in.
	maxClusterLen = 64
	// maxDataSizeLimit keeps one znode's data, plus its path and txn
	// header, inside MaxRequestSize.
	maxDataSizeLimit = tree.MaxDataLimit
	// minTick is the finest tick a Go timer honours with some accuracy.
	minTick = time.Millisecond
)

// Config configures a node. Start from LocalConfig or LANConfig, or set only
// the fields you care about: Join (and Validate) fill every zero field from
// LANConfig, so a zero duration or address means "the default". Join copies
// the Config; changing it afterwards has no effect.
//
// All timing fields are durations. The replication core counts in ticks:
// every other timing field is rounded up to a whole number of TickInterval.
type Config struct {
	// NodeID identifies the node for its lifetime, like ZooKeeper's myid.
	// Required and non-zero. It is also the gossip node name, so a node that
	// restarts with the same id on a new address replaces its old entry.
	NodeID uint64
	// Cluster names the ensemble (letters, digits, '.', '_', '-'; at most
	// 64 bytes). It is the memberlist label and goes into the replication
	// handshake, so nodes of two clusters never mix even on shared seeds.
	// Default "coord".
	Cluster string

	// GossipBindAddr is the IP:port memberlist listens on (UDP and TCP).
	// Port 0 picks a free port. The host must be an IP literal.
	GossipBindAddr string
	// GossipAdvertiseAddr is the IP:port other nodes use to reach this
	// node's gossip. Empty means the bound address (or, when bound to
	// 0.0.0.0, memberlist's choice of a private address). Port 0 means the
	// bound port.
	GossipAdvertiseAddr string
	// ReplicationBindAddr is the IP:port the replication transport listens
	// on. Port 0 picks a free port.
	ReplicationBindAddr string
	// ReplicationAdvertiseAddr is the host:port peers dial for replication;
	// it travels in gossip metadata. Empty means the bound address (with the
	// gossip advertise IP when bound to an unspecified address). Port 0
	// means the bound port.
	ReplicationAdvertiseAddr string
	// Seeds are gossip addresses (host:port) of nodes to join. They need not
	// all be up; one reachable seed is enough. May include this node's own
	// address. Empty is fine for the first node of a cluster.
	Seeds []string

	// Voters lists the ids of the initial voting ensemble. Exactly one of
	// Voters and BootstrapExpect must be set. Once the cluster has committed
	// a configuration, that configuration wins over this field.
	Voters []uint64
	// BootstrapExpect bootstraps the voter set from the first
	// BootstrapExpect voter-role nodes seen in gossip, instead of listing
	// them. Every bootstrapping node must use the same value.
	BootstrapExpect int
	// Role is RoleVoter (the zero value) or RoleObserver. A voter's id must
	// be in Voters (unless BootstrapExpect is used, or Autopilot is on: then
	// a node outside the committed voters joins as an observer, so every
	// replica can run the same command line); an observer's must not.
	Role Role
	// Autopilot keeps the voter set at a target size by itself: on by
	// default with BootstrapExpect, opt-in with Voters. See AutopilotConfig.
	Autopilot AutopilotConfig

	// DataDir holds the transaction log and snapshots. Empty means the node
	// keeps everything in memory and loses it on restart (and logs so).
	// The directory records the Cluster, the cluster's id and NodeID: Join
	// refuses one of another node or cluster, or one that is incomplete or
	// inconsistent (files missing or damaged), with an error naming it. A
	// voter that lost its DataDir (restarted empty) does not vote until an
	// established leader has synchronised it, so a write acknowledged by a
	// quorum survives the loss of any one disk; while the others holding
	// the writes are down, such a node waits.
	DataDir string

	// TickInterval is the replication core's clock. Every other timing is
	// a whole number of ticks (rounded up).
	TickInterval time.Duration
	// HeartbeatInterval is how often the leader pings its followers.
	HeartbeatInterval time.Duration
	// ElectionTimeout is the base wait before a looking node re-sends its
	// vote (jittered up to twice that). Must exceed HeartbeatInterval.
	ElectionTimeout time.Duration
	// SyncLimit is how long a follower may go without hearing from its
	// leader (and a leader without a quorum) before giving up on it; it
	// dominates the fail-over time. At least 3 ticks and more than
	// HeartbeatInterval, so one lost heartbeat is not a fail-over.
	SyncLimit time.Duration
	// JoinTimeout bounds Join: gossip join, election and sync with a leader.
	// At least ElectionTimeout.
	JoinTimeout time.Duration

	// MinSessionTimeout and MaxSessionTimeout bound the session timeouts the
	// leader grants (a request outside is clamped, as in ZooKeeper);
	// DefaultSessionTimeout is used when a session asks for none.
	// Min ≤ Default ≤ Max, and Min is at least 2 ticks.
	MinSessionTimeout     time.Duration
	DefaultSessionTimeout time.Duration
	MaxSessionTimeout     time.Duration

	// MaxDataSize bounds one znode's data in bytes (ZooKeeper's
	// jute.maxbuffer). Default 1 MiB; at most 7 MiB. The limit a write
	// is checked against travels with it, so nodes configured differently
	// still apply every write alike; a whole request is further bounded by
	// MaxRequestSize and MaxMultiOps.
	MaxDataSize int
	// SnapshotEvery is how many committed transactions trigger a background
	// snapshot (ZooKeeper's snapCount).
	SnapshotEvery int
	// SnapshotRetain is how many snapshots (and the logs they need) are kept
	// on disk. At least 1.
	SnapshotRetain int

	// GossipProbeInterval is memberlist's failure-detection period; the other
	// memberlist timers scale with it (probe timeout half of it, gossip every
	// fifth of it, full state sync every 30 of it).
	GossipProbeInterval time.Duration
	// GossipHealInterval is how often the node re-joins the last known
	// addresses of members it cannot see and its seeds, so that a long
	// partition does not leave the gossip split for ever. At least
	// GossipProbeInterval.
	GossipHealInterval time.Duration

	// Logger receives the node's logs, with the node id on every line.
	// Nil discards them.
	Logger *slog.Logger
	// SecretKey, if set, must be 16, 24 or 32 bytes. It is never used as
	// a key itself: separate keys are derived from it with HKDF-SHA256
	// and distinct labels, one for gossip (AES-256-GCM, memberlist's
	// keyring), one for the replication handshake (HMAC-SHA256, both ends
	// prove the key), and fresh ones for each replication connection's
	// frames (AES-256-GCM, keyed from both ends' handshake nonces), so a
	// node without it can neither join nor get a frame processed, and no
	// znode data crosses the network in the clear. Without it, Join logs a
	// warning once: anyone who can reach the ports can join, and
	// replication frames travel in the clear.
	//
	// Wire compatibility: older coord (before derived keys) gave SecretKey to
	// memberlist as is and sent replication frames in the clear; a keyed
	// node of that version and a keyed node of this one refuse each other
	// (gossip does not decrypt, the replication proofs differ). Upgrade a
	// keyed cluster by stopping every node, not by a rolling restart.
	// Keyless clusters are unaffected.
	SecretKey []byte
	// ExpvarName, if set, publishes Stats under this name in the standard
	// library's expvar. Empty publishes nothing.
	ExpvarName string
}

// LocalConfig returns a config for nodes on one machine (tests, examples,
// the quickstart): loopback addresses with free ports and fast timers, so a
// leader loss is repaired well under a second. Only the timers differ from
// LANConfig in spirit; like memberlist's DefaultLocalConfig, it trades
// network tolerance for speed and is not meant for real networks.
func LocalConfig(id uint64) Config {
	return Config{
		NodeID:              id,
		Cluster:             "coord",
		GossipBindAddr:      "127.0.0.1:0",
		ReplicationBindAddr: "127.0.0.1:0",
		// 10ms ticks: loopback round trips are ~0.1ms, so every limit
		// below is still dozens of round trips.
		TickInterval:      10 * time.Millisecond,
		HeartbeatInterval: 20 * time.Millisecond,
		ElectionTimeout:   50 * time.Millisecond,
		// Followers notice a dead leader after 150ms, then one or two
		// election rounds: fail-over in roughly 200-400ms.
		SyncLimit:   150 * time.Millisecond,
		JoinTimeout: 10 * time.Second,
		// Sessions outlive a fail-over (default 2s ≫ 400ms) yet expire
		// fast enough for tests of ephemeral cleanup.
		MinSessionTimeout:     200 * time.Millisecond,
		DefaultSessionTimeout: 2 * time.Second,
		MaxSessionTimeout:     30 * time.Second,
		MaxDataSize:           1 << 20,
		SnapshotEvery:         10_000,
		SnapshotRetain:        2,
		// A dead gossip peer is declared in about a second on loopback,
		// and a split gossip is re-joined twice a second.
		GossipProbeInterval: 100 * time.Millisecond,
		GossipHealInterval:  500 * time.Millisecond,
		// A new node votes after a second of health; a failed voter
		// (declared dead by gossip in about a second) is replaced after 3s.
		Autopilot: AutopilotConfig{StableAfter: time.Second, DeadAfter: 3 * time.Second},
	}
}

// LANConfig returns the defaults for nodes on one local network, mirroring
// memberlist's DefaultLANConfig: bind on all interfaces at fixed ports
// (gossip 7946 like memberlist, replication 2888 like ZooKeeper's quorum
// port) and timers that tolerate ordinary LAN hiccups. Join fills every zero
// field of a Config from it.
func LANConfig(id uint64) Config {
	return Config{
		NodeID:              id,
		Cluster:             "coord",
		GossipBindAddr:      "0.0.0.0:7946",
		ReplicationBindAddr: "0.0.0.0:2888",
		// etcd's LAN defaults (100ms heartbeat, 1s election) in spirit;
		// ZooKeeper's 2s tickTime makes fail-over take tens of seconds.
		TickInterval:      100 * time.Millisecond,
		HeartbeatInterval: 200 * time.Millisecond,
		ElectionTimeout:   time.Second,
		// Ten missed heartbeats before a follower gives up on its leader:
		// a GC pause or a busy switch is not a fail-over.
		SyncLimit:   2 * time.Second,
		JoinTimeout: time.Minute,
		// ZooKeeper grants 2..20 ticks of its 2s tickTime: 4s..40s.
		MinSessionTimeout:     4 * time.Second,
		DefaultSessionTimeout: 10 * time.Second,
		MaxSessionTimeout:     40 * time.Second,
		// ZooKeeper's jute.maxbuffer, snapCount and snapRetainCount.
		MaxDataSize:    1 << 20,
		SnapshotEvery:  100_000,
		SnapshotRetain: 3,
		// memberlist's LAN probe interval; healing every few seconds costs
		// one TCP exchange per unreachable member.
		GossipProbeInterval: time.Second,
		GossipHealInterval:  5 * time.Second,
		// Consul's autopilot waits 10s before promoting a server; a voter
		// gone for 30s is replaced (a restart takes less).
		Autopilot: AutopilotConfig{StableAfter: 10 * time.Second, DeadAfter: 30 * time.Second},
	}
}

// withDefaults returns a copy of c whose zero fields are taken from
// LANConfig, with its slices copied so the caller's later changes do not
// reach a running node. Voters, BootstrapExpect, Role, DataDir, Seeds,
// Logger, SecretKey and ExpvarName have no default: their zero value means
// something.
func (c Config) withDefaults() Config {
	d := LANConfig(c.NodeID)
	str := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	dur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	num := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	str(&c.Cluster, d.Cluster)
	str(&c.GossipBindAddr, d.GossipBindAddr)
	str(&c.ReplicationBindAddr, d.ReplicationBindAddr)
	dur(&c.TickInterval, d.TickInterval)
	dur(&c.HeartbeatInterval, d.HeartbeatInterval)
	dur(&c.ElectionTimeout, d.ElectionTimeout)
	dur(&c.SyncLimit, d.SyncLimit)
	dur(&c.JoinTimeout, d.JoinTimeout)
	dur(&c.MinSessionTimeout, d.MinSessionTimeout)
	dur(&c.DefaultSessionTimeout, d.DefaultSessionTimeout)
	dur(&c.MaxSessionTimeout, d.MaxSessionTimeout)
	num(&c.MaxDataSize, d.MaxDataSize)
	num(&c.SnapshotEvery, d.SnapshotEvery)
	num(&c.SnapshotRetain, d.SnapshotRetain)
	dur(&c.GossipProbeInterval, d.GossipProbeInterval)
	dur(&c.GossipHealInterval, d.GossipHealInterval)
	dur(&c.Autopilot.StableAfter, d.Autopilot.StableAfter)
	dur(&c.Autopilot.DeadAfter, d.Autopilot.DeadAfter)
	c.Seeds = slices.Clone(c.Seeds)
	c.Voters = slices.Clone(c.Voters)
	c.SecretKey = slices.Clone(c.SecretKey)
	return c
}

// ticks converts d to a whole number of ticks, rounding up, at least 1.
// It is meant for a config that passed Validate.
func (c Config) ticks(d time.Duration) int {
	if c.TickInterval <= 0 || d <= 0 {
		return 1
	}
	return int((d + c.TickInterval - 1) / c.TickInterval)
}

// Validate reports every problem Join would find in c, all at once
// (errors.Join). It checks c as Join uses it: after zero fields are filled
// from LANConfig. Each problem names its field and wraps ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
	}

	if c.NodeID == 0 {
		bad("NodeID", "must be non-zero")
	}
	if err := checkCluster(c.Cluster); err != "" {
		bad("Cluster", "%q: %s", c.Cluster, err)
	}

	// Addresses.
	gb, gbOK := checkAddr(bad, "GossipBindAddr", c.GossipBindAddr, addrBind)
	if c.GossipAdvertiseAddr != "" {
		checkAddr(bad, "GossipAdvertiseAddr", c.GossipAdvertiseAddr, addrAdvertiseIP)
	}
	if gbOK && gb.Addr().Is6() && gb.Addr().IsUnspecified() && c.GossipAdvertiseAddr == "" {
		// memberlist picks a private address only for 0.0.0.0.
		bad("GossipAdvertiseAddr", "must be set when GossipBindAddr is the IPv6 wildcard %s", c.GossipBindAddr)
	}
	rb, rbOK := checkAddr(bad, "ReplicationBindAddr", c.ReplicationBindAddr, addrBind)
	if c.ReplicationAdvertiseAddr != "" {
		checkAddr(bad, "ReplicationAdvertiseAddr", c.ReplicationAdvertiseAddr, addrAdvertiseHost)
	}
	if gbOK && rbOK && gb.Port() != 0 && gb.Port() == rb.Port() &&
		(gb.Addr() == rb.Addr() || gb.Addr().IsUnspecified() || rb.Addr().IsUnspecified()) {
		bad("ReplicationBindAddr", "%s: same port as GossipBindAddr %s", c.ReplicationBindAddr, c.GossipBindAddr)
	}
	for i, s := range c.Seeds {
		checkAddr(bad, fmt.Sprintf("Seeds[%d]", i), s, addrSeed)
	}

	// Ensemble.
	switch {
	case len(c.Voters) > 0 && c.BootstrapExpect != 0:
		bad("Voters", "set together with BootstrapExpect; set exactly one")
	case len(c.Voters) == 0 && c.BootstrapExpect == 0:
		bad("Voters", "neither Voters nor BootstrapExpect is set; set exactly one")
	}
	if c.BootstrapExpect < 0 {
		bad("BootstrapExpect", "%d, must not be negative", c.BootstrapExpect)
	}
	seen := make(map[uint64]bool, len(c.Voters))
	for i, v := range c.Voters {
		if v == 0 {
			bad("Voters", "Voters[%d] is 0; ids are non-zero", i)
		} else if seen[v] {
			bad("Voters", "id %d listed twice", v)
		}
		seen[v] = true
	}
	switch c.Role {
	case RoleVoter:
		if len(c.Voters) > 0 && c.NodeID != 0 && !seen[c.NodeID] && !c.autopilotOn() {
			bad("Voters", "voter node %d is not in Voters %v (make it an observer or add it)", c.NodeID, c.Voters)
		}
	case RoleObserver:
		if seen[c.NodeID] {
			bad("Role", "observer node %d is listed in Voters", c.NodeID)
		}
	default:
		bad("Role", "%d is neither RoleVoter nor RoleObserver", c.Role)
	}

	// Timing.
	positive := func(field string, d time.Duration) bool {
		if d < 0 {
			bad(field, "%v, must be positive", d)
			return false
		}
		return true
	}
	tick := c.TickInterval
	if positive("TickInterval", tick) && tick < minTick {
		bad("TickInterval", "%v, must be at least %v", tick, minTick)
		tick = 0
	}
	hb, el, sl := c.HeartbeatInterval, c.ElectionTimeout, c.SyncLimit
	okT := positive("HeartbeatInterval", hb)
	okT = positive("ElectionTimeout", el) && okT
	okT = positive("SyncLimit", sl) && okT
	okT = positive("JoinTimeout", c.JoinTimeout) && okT
	if okT && tick >= minTick {
		if hb < tick {
			bad("HeartbeatInterval", "%v, shorter than TickInterval %v", hb, tick)
		}
		if el < 2*tick {
			bad("ElectionTimeout", "%v, must be at least 2 ticks (TickInterval %v)", el, tick)
		}
		if el <= hb {
			bad("ElectionTimeout", "%v, must exceed HeartbeatInterval %v", el, hb)
		}
		if sl < 3*tick {
			bad("SyncLimit", "%v, must be at least 3 ticks (TickInterval %v)", sl, tick)
		}
		if sl <= hb {
			bad("SyncLimit", "%v, must exceed HeartbeatInterval %v", sl, hb)
		}
		if c.JoinTimeout < el {
			bad("JoinTimeout", "%v, shorter than ElectionTimeout %v", c.JoinTimeout, el)
		}
	}

	// Sessions.
	mn, df, mx := c.MinSessionTimeout, c.DefaultSessionTimeout, c.MaxSessionTimeout
	okS := positive("MinSessionTimeout", mn)
	okS = positive("DefaultSessionTimeout", df) && okS
	okS = positive("MaxSessionTimeout", mx) && okS
	if okS {
		if mn > df {
			bad("MinSessionTimeout", "%v, above DefaultSessionTimeout %v", mn, df)
		}
		if df > mx {
			bad("MaxSessionTimeout", "%v, below DefaultSessionTimeout %v", mx, df)
		}
		if tick >= minTick && mn < 2*tick {
			bad("MinSessionTimeout", "%v, must be at least 2 ticks (TickInterval %v)", mn, tick)
		}
	}

	// Sizes.
	if c.MaxDataSize < 0 || c.MaxDataSize > maxDataSizeLimit {
		bad("MaxDataSize", "%d, must be in [1, %d]", c.MaxDataSize, maxDataSizeLimit)
	}
	if c.SnapshotEvery < 0 {
		bad("SnapshotEvery", "%d, must be positive", c.SnapshotEvery)
	}
	if c.SnapshotRetain < 0 {
		bad("SnapshotRetain", "%d, must be at least 1", c.SnapshotRetain)
	}

	// Gossip.
	pi, hi := c.GossipProbeInterval, c.GossipHealInterval
	okG := positive("GossipProbeInterval", pi)
	okG = positive("GossipHealInterval", hi) && okG
	if okG {
		if pi < 10*time.Millisecond {
			bad("GossipProbeInterval", "%v, must be at least 10ms", pi)
		}
		if hi < pi {
			bad("GossipHealInterval", "%v, shorter than GossipProbeInterval %v", hi, pi)
		}
	}

	c.validateAutopilot(bad)

	// Security and observability.
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
	default:
		bad("SecretKey", "%d bytes, must be 16, 24 or 32", len(c.SecretKey))
	}
	if c.ExpvarName != "" {
		for _, r := range c.ExpvarName {
			if !unicode.IsPrint(r) || unicode.IsSpace(r) {
				bad("ExpvarName", "%q: only printable characters without spaces", c.ExpvarName)
				break
			}
		}
	}
	return errors.Join(errs...)
}

// checkCluster returns why name is not a valid cluster name, or "".
func checkCluster(name string) string {
	if name == "" {
		return "must not be empty"
	}
	if len(name) > maxClusterLen {
		return fmt.Sprintf("%d bytes, at most %d", len(name), maxClusterLen)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '.' || r == '_' || r == '-'
		if !ok {
			return "only letters, digits, '.', '_' and '-' are allowed"
		}
	}
	return ""
}

// addrKind says which host:port forms an address field accepts.
type addrKind int

const (
	addrBind          addrKind = iota // IP literal, port 0 allowed
	addrAdvertiseIP                   // specific IP literal, port 0 = bound port
	addrAdvertiseHost                 // host name or specific IP, port 0 = bound port
	addrSeed                          // host name or IP, port required
)

// checkAddr reports through bad what is wrong with s for the given kind.
// It returns the parsed address when s is an IP:port.
func checkAddr(bad func(field, format string, args ...any), field, s string, kind addrKind) (netip.AddrPort, bool) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		bad(field, "%q is not host:port: %v", s, err)
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		bad(field, "%q: port %q is not a number in [0, 65535]", s, portStr)
		return netip.AddrPort{}, false
	}
	if port == 0 && kind == addrSeed {
		bad(field, "%q: port 0 cannot be dialled", s)
		return netip.AddrPort{}, false
	}
	ip, ipErr := netip.ParseAddr(host)
	switch {
	case host == "":
		bad(field, "%q: missing host", s)
		return netip.AddrPort{}, false
	case ipErr != nil && (kind == addrBind || kind == addrAdvertiseIP):
		bad(field, "%q: host must be an IP literal", s)
		return netip.AddrPort{}, false
	case ipErr == nil && ip.Zone() != "":
		bad(field, "%q: zoned IPv6 addresses are not supported", s)
		return netip.AddrPort{}, false
	case ipErr == nil && ip.IsUnspecified() && kind != addrBind:
		bad(field, "%q: %s cannot be dialled; use a specific address", s, host)
		return netip.AddrPort{}, false
	}
	if ipErr != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), true
}

// gossipConfig returns the membership configuration of a validated config
// c; replAddr is the replication address to advertise (see
// replicationAdvertiseAddr).
func (c Config) gossipConfig(replAddr string) gossip.Config {
	role := gossip.RoleVoter
	if c.Role == RoleObserver {
		role = gossip.RoleObserver
	}
	return gossip.Config{
		NodeID:        c.NodeID,
		Cluster:       c.Cluster,
		BindAddr:      c.GossipBindAddr,
		AdvertiseAddr: c.GossipAdvertiseAddr,
		Seeds:         slices.Clone(c.Seeds),
		SecretKey:     slices.Clone(c.SecretKey),
		Logger:        c.Logger,
		Meta:          gossip.Meta{ReplicationAddr: replAddr, Role: role},
		ProbeInterval: c.GossipProbeInterval,
		HealInterval:  c.GossipHealInterval,
	}
}

// replicationAdvertiseAddr applies ReplicationAdvertiseAddr's rules once
// the replication listener is bound at bound (IP:port) and gossip
// advertises gossipAddr (IP:port): an empty advertise address means the
// bound one, with the gossip IP if bound to an unspecified address; port 0
// means the bound port.
func (c Config) replicationAdvertiseAddr(bound, gossipAddr string) (string, error) {
	b, err := netip.ParseAddrPort(bound)
	if err != nil {
		return "", fmt.Errorf("coord: replication bound address %q: %w", bound, err)
	}
	if c.ReplicationAdvertiseAddr != "" {
		host, port, err := net.SplitHostPort(c.ReplicationAdvertiseAddr)
		if err != nil {
			return "", fmt.Errorf("%w: ReplicationAdvertiseAddr: %w", ErrInvalidConfig, err)
		}
		if port == "0" {
			port = strconv.Itoa(int(b.Port()))
		}
		return net.JoinHostPort(host, port), nil
	}
	if !b.Addr().IsUnspecified() {
		return b.String(), nil
	}
	g, err := netip.ParseAddrPort(gossipAddr)
	if err != nil {
		return "", fmt.Errorf("coord: gossip address %q: %w", gossipAddr, err)
	}
	return netip.AddrPortFrom(g.Addr(), b.Port()).String(), nil
}
