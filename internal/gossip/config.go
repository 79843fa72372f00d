package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// Sentinel errors of the package.
var (
	// ErrInvalidConfig wraps every problem New finds in a Config.
	ErrInvalidConfig = errors.New("gossip: invalid config")
	// ErrInvalidMeta wraps metadata that is malformed, too large or
	// inconsistent with the node it describes.
	ErrInvalidMeta = errors.New("gossip: invalid metadata")
	// ErrClosed is returned by calls on a closed Gossip.
	ErrClosed = errors.New("gossip: closed")
	// ErrLeft is returned by Join and UpdateMeta after Leave.
	ErrLeft = errors.New("gossip: left the cluster")
	// ErrNoSeedReachable is wrapped by Join when its context ends before
	// any seed accepted a state exchange.
	ErrNoSeedReachable = errors.New("gossip: no seed reachable")
)

// Config configures a Gossip. New copies it.
type Config struct {
	// NodeID is the node's id; its decimal form is the memberlist node name.
	// Required, non-zero.
	NodeID uint64
	// Cluster is the memberlist label: packets and streams of another
	// cluster are dropped before they are decoded, and peers whose metadata
	// names another cluster are vetoed. Required, at most 64 bytes.
	Cluster string
	// BindAddr is the IP:port to listen on (UDP and TCP). Port 0 picks a
	// free port (the same for both).
	BindAddr string
	// AdvertiseAddr is the IP:port peers use to reach this node. Empty means
	// the bound address; port 0 means the bound port.
	AdvertiseAddr string
	// Seeds are host:port gossip addresses to join and, when unreachable
	// members are healed, to re-join. This node's own address is skipped.
	Seeds []string
	// SecretKey (16, 24 or 32 bytes) encrypts every packet and stream with
	// memberlist's keyring and rejects unencrypted ones, so a node without
	// the key can neither join nor be joined. memberlist does not get it as
	// it is but a 32-byte AES-256 key derived from it with HKDF-SHA256 and
	// a label of gossip's own (see memberlistKey), so that gossip and
	// replication (zab/tcp, which derives its keys with other labels) never
	// share a key. Older coord gave SecretKey to memberlist as is: such a
	// node cannot gossip with a newer one under the same key. Nil disables
	// encryption, with a warning logged once.
	SecretKey []byte
	// Logger receives the package's logs and memberlist's (at Debug), with
	// the node id on every line. Nil discards.
	Logger *slog.Logger
	// Meta is what this node advertises. NodeID and Cluster may be left zero
	// (they are taken from the Config); ReplicationAddr is required, but an
	// empty or unspecified host in it ("0.0.0.0:2888", ":2888") is replaced
	// by this node's gossip advertise IP, so a node bound to all interfaces
	// still advertises an address peers can dial.
	Meta Meta

	// ProbeInterval is memberlist's failure-detection period. The other
	// memberlist timers are derived from it (see timers). Default 1s, like
	// memberlist's LAN config.
	ProbeInterval time.Duration
	// HealInterval is how often unreachable members and seeds are re-joined
	// (see Gossip). Default 5s.
	HealInterval time.Duration
	// ForgetAfter is how long a dead member stays in Members and in the
	// heal targets. Default 24h, like Serf's reconnect timeout.
	ForgetAfter time.Duration
	// EventBuffer is the capacity of the Events channel. Default 256. A
	// full channel never blocks gossip (events coalesce per member).
	EventBuffer int

	// wrapTransport, if set, wraps the UDP/TCP transport (tests use it to
	// cut the network).
	wrapTransport func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport
}

// timers are the memberlist settings derived from ProbeInterval. With the
// default 1s they equal memberlist's DefaultLANConfig.
type timers struct {
	probeTimeout, gossipInterval, pushPull, tcpTimeout, toTheDead, reclaim time.Duration
}

func (c *Config) timers() timers {
	p := c.ProbeInterval
	return timers{
		probeTimeout:   p / 2,
		gossipInterval: p / 5,
		pushPull:       30 * p,
		tcpTimeout:     max(10*p, time.Second),
		toTheDead:      30 * p,
		// A node restarted with the same id on a new address replaces its
		// old entry once that entry is dead for this long. Short, because
		// the old address has already failed every probe by then.
		reclaim: p,
	}
}

// withDefaults returns a validated copy of c with defaults filled in.
func (c Config) withDefaults() (Config, error) {
	c.Seeds = slices.Clone(c.Seeds)
	c.SecretKey = slices.Clone(c.SecretKey)
	if c.ProbeInterval == 0 {
		c.ProbeInterval = time.Second
	}
	if c.HealInterval == 0 {
		c.HealInterval = 5 * time.Second
	}
	if c.ForgetAfter == 0 {
		c.ForgetAfter = 24 * time.Hour
	}
	if c.EventBuffer == 0 {
		c.EventBuffer = 256
	}
	if c.Meta.NodeID == 0 {
		c.Meta.NodeID = c.NodeID
	}
	if c.Meta.Cluster == "" {
		c.Meta.Cluster = c.Cluster
	}
	if c.Meta.Role == 0 {
		c.Meta.Role = RoleVoter
	}

	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
	}
	if c.NodeID == 0 {
		bad("NodeID", "must be non-zero")
	}
	if c.Cluster == "" || len(c.Cluster) > maxCluster {
		bad("Cluster", "%q must be 1 to %d bytes", c.Cluster, maxCluster)
	}
	if _, err := netip.ParseAddrPort(c.BindAddr); err != nil {
		bad("BindAddr", "%q: %v", c.BindAddr, err)
	}
	if c.AdvertiseAddr != "" {
		if ap, err := netip.ParseAddrPort(c.AdvertiseAddr); err != nil || ap.Addr().IsUnspecified() {
			bad("AdvertiseAddr", "%q is not a specific IP:port", c.AdvertiseAddr)
		}
	}
	for i, s := range c.Seeds {
		if _, p, err := net.SplitHostPort(s); err != nil || p == "0" {
			bad(fmt.Sprintf("Seeds[%d]", i), "%q is not host:port", s)
		}
	}
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
	default:
		bad("SecretKey", "%d bytes, must be 16, 24 or 32", len(c.SecretKey))
	}
	if c.ProbeInterval < 10*time.Millisecond {
		bad("ProbeInterval", "%v, must be at least 10ms", c.ProbeInterval)
	}
	if c.HealInterval < c.ProbeInterval {
		bad("HealInterval", "%v, shorter than ProbeInterval", c.HealInterval)
	}
	if c.ForgetAfter < 0 {
		bad("ForgetAfter", "%v, must be positive", c.ForgetAfter)
	}
	if c.EventBuffer < 0 {
		bad("EventBuffer", "%d, must be positive", c.EventBuffer)
	}
	if c.Meta.NodeID != c.NodeID {
		bad("Meta.NodeID", "%d differs from NodeID %d", c.Meta.NodeID, c.NodeID)
	}
	if c.Meta.Cluster != c.Cluster {
		bad("Meta.Cluster", "%q differs from Cluster %q", c.Meta.Cluster, c.Cluster)
	}
	// The host may still be replaced (withHost); check with a stand-in.
	probe := c.Meta
	probe.ReplicationAddr = withHost(probe.ReplicationAddr, netip.IPv6Loopback())
	if err := probe.check(); err != nil {
		bad("Meta", "%v", err)
	} else if b, err := encodeMeta(probe, false); err != nil {
		bad("Meta", "%v", err)
	} else if len(b) > memberlist.MetaMaxSize {
		bad("Meta", "encodes to %d bytes, memberlist allows %d", len(b), memberlist.MetaMaxSize)
	}
	return c, errors.Join(errs...)
}

// nodeName is the memberlist name of node id.
func nodeName(id uint64) string { return strconv.FormatUint(id, 10) }

// parseNodeName returns the id named by a memberlist node name: the
// canonical decimal form of a non-zero uint64.
func parseNodeName(name string) (uint64, error) {
	id, err := strconv.ParseUint(name, 10, 64)
	if err != nil || id == 0 || strconv.FormatUint(id, 10) != name {
		return 0, fmt.Errorf("%w: node name %.40q is not a non-zero decimal id", ErrInvalidMeta, name)
	}
	return id, nil
}
