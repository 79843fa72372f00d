package gossip

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/coord-dev/coord/internal/msgpackcheck"
)

// Role is what a member does in the replication ensemble.
type Role uint8

const (
	// RoleVoter members vote in elections and quorums.
	RoleVoter Role = 1
	// RoleObserver members replicate but never vote.
	RoleObserver Role = 2
)

// String returns "voter", "observer" or Role(n).
func (r Role) String() string {
	switch r {
	case RoleVoter:
		return "voter"
	case RoleObserver:
		return "observer"
	}
	return "Role(" + strconv.Itoa(int(r)) + ")"
}

// maxCluster bounds the cluster name (a memberlist label may have 255 bytes,
// but the name also travels in the 512-byte metadata).
const maxCluster = 64

// maxReplAddr bounds the replication address in metadata.
const maxReplAddr = 256

// metaVersion is the metadata encoding this package writes. Decoders accept
// it and later versions (unknown fields are ignored), never earlier ones.
const metaVersion = 1

// Meta is what a member advertises through gossip.
type Meta struct {
	// NodeID is the member's id; it always equals the id in its node name.
	NodeID uint64
	// Cluster is the member's cluster; members of another cluster are vetoed.
	Cluster string
	// ReplicationAddr is the host:port peers dial for replication.
	ReplicationAddr string
	// Role is RoleVoter or RoleObserver.
	Role Role
}

// check reports what is wrong with m on its own (without the Config).
func (m Meta) check() error {
	if m.NodeID == 0 {
		return fmt.Errorf("%w: node id 0", ErrInvalidMeta)
	}
	if m.Cluster == "" || len(m.Cluster) > maxCluster {
		return fmt.Errorf("%w: cluster %.80q must be 1 to %d bytes", ErrInvalidMeta, m.Cluster, maxCluster)
	}
	if m.Role != RoleVoter && m.Role != RoleObserver {
		return fmt.Errorf("%w: unknown role %d", ErrInvalidMeta, m.Role)
	}
	if len(m.ReplicationAddr) > maxReplAddr {
		return fmt.Errorf("%w: replication address of %d bytes, at most %d", ErrInvalidMeta, len(m.ReplicationAddr), maxReplAddr)
	}
	host, port, err := net.SplitHostPort(m.ReplicationAddr)
	if err != nil || host == "" {
		return fmt.Errorf("%w: replication address %.80q is not host:port", ErrInvalidMeta, m.ReplicationAddr)
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		// Dialling 0.0.0.0 reaches the dialler itself.
		return fmt.Errorf("%w: replication address %.80q cannot be dialled", ErrInvalidMeta, m.ReplicationAddr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("%w: replication address %.80q has no valid port", ErrInvalidMeta, m.ReplicationAddr)
	}
	return nil
}

// wireMeta is Meta on the wire. Short keys keep it small; Leaving is set
// just before a graceful leave so peers can tell "left" from "failed"
// (memberlist's event delegate does not say which).
type wireMeta struct {
	Version uint8  `msgpack:"v"`
	NodeID  uint64 `msgpack:"id"`
	Cluster string `msgpack:"c"`
	Repl    string `msgpack:"r"`
	Role    Role   `msgpack:"ro"`
	Leaving bool   `msgpack:"l,omitempty"`
}

// encodeMeta returns the wire form of m.
func encodeMeta(m Meta, leaving bool) ([]byte, error) {
	b, err := msgpack.Marshal(&wireMeta{
		Version: metaVersion, NodeID: m.NodeID, Cluster: m.Cluster,
		Repl: m.ReplicationAddr, Role: m.Role, Leaving: leaving,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMeta, err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes, memberlist allows %d", ErrInvalidMeta, len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

// decodeMeta parses and checks metadata received from a peer. Bad bytes are
// an error, never a panic or a large allocation.
func decodeMeta(b []byte) (m Meta, leaving bool, err error) {
	if len(b) == 0 {
		return Meta{}, false, fmt.Errorf("%w: empty", ErrInvalidMeta)
	}
	if len(b) > memberlist.MetaMaxSize {
		return Meta{}, false, fmt.Errorf("%w: %d bytes", ErrInvalidMeta, len(b))
	}
	if err := msgpackcheck.Check(b, 4); err != nil {
		return Meta{}, false, fmt.Errorf("%w: %w", ErrInvalidMeta, err)
	}
	var w wireMeta
	if err := msgpack.Unmarshal(b, &w); err != nil {
		return Meta{}, false, fmt.Errorf("%w: %w", ErrInvalidMeta, err)
	}
	if w.Version < metaVersion {
		return Meta{}, false, fmt.Errorf("%w: version %d", ErrInvalidMeta, w.Version)
	}
	m = Meta{NodeID: w.NodeID, Cluster: w.Cluster, ReplicationAddr: w.Repl, Role: w.Role}
	if err := m.check(); err != nil {
		return Meta{}, false, err
	}
	return m, w.Leaving, nil
}

// withHost returns addr (host:port) with ip as its host if the host is empty
// or an unspecified IP; any other addr is returned unchanged.
func withHost(addr string, ip netip.Addr) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if h, err := netip.ParseAddr(host); host != "" && (err != nil || !h.IsUnspecified()) {
		return addr
	}
	return net.JoinHostPort(ip.Unmap().String(), port)
}
