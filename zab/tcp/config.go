package tcp

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/coord-dev/coord/zab"
)

// ErrInvalidConfig wraps every Config.Validate failure.
var ErrInvalidConfig = errors.New("zab/tcp: invalid config")

// minSecretKey is the shortest accepted secret key: 128 bits.
const minSecretKey = 16

// Config configures a Transport. The zero value of every field except ID
// means "use the default" (see DefaultConfig); New copies the Config, so
// changing it afterwards has no effect.
type Config struct {
	// ID is this node's peer id. Required, non-zero.
	ID zab.PeerID
	// BindAddr is the host:port to listen on for peer connections. Port 0
	// picks a free port; Transport.Addr reports the bound address.
	BindAddr string
	// Cluster names the ensemble. It is bound into the handshake, so nodes
	// of different clusters never exchange frames even with the same key.
	Cluster string
	// SecretKey, when set, makes both ends of every connection prove they
	// hold it (HMAC-SHA256 challenge-response) before any message frame is
	// processed, and encrypts and authenticates every message frame
	// (AES-256-GCM with fresh keys per connection; see the package
	// documentation). At least 16 bytes; keys are derived from it with
	// HKDF-SHA256, never used as it is. Without it connections still do
	// the hello (ids, cluster, version) but anyone who can reach the port
	// can claim any id, and frames travel in the clear.
	SecretKey []byte
	// Logger receives connection events and refusals, with the node id on
	// every line. Nil discards. Nothing is logged per message.
	Logger *slog.Logger

	// MaxFrameSize bounds a frame's payload in bytes, on send and receive.
	// A single message larger than this is dropped by the sender; a frame
	// header announcing more closes the connection before any allocation.
	MaxFrameSize int
	// MaxBatch bounds how many queued messages go out in one frame.
	MaxBatch int
	// SendQueueSize is the per-peer bound on queued outbound messages; Send
	// returns zab.ErrQueueFull beyond it.
	SendQueueSize int
	// RecvBufferSize is the capacity of the Receive channel. When it is full,
	// readers stop reading and TCP flow control slows the senders down.
	// The channel holds whole zab.Messages (272 bytes each) and is
	// allocated at New: the default, 1024, one frame's worth (MaxBatch),
	// costs 272 KiB per node where 8192 cost 2.1 MiB (issue 13).
	RecvBufferSize int
	// MaxPendingHandshakes bounds inbound connections that have not finished
	// the handshake; more are closed at once.
	MaxPendingHandshakes int
	// MaxPendingHandshakesPerHost bounds the connections from one source IP
	// that have not finished the handshake (each gets HandshakeTimeout), so
	// that idle connections from one host cannot take every slot and keep
	// real peers from reconnecting. At most MaxPendingHandshakes.
	MaxPendingHandshakesPerHost int

	// DialTimeout bounds connecting to a peer.
	DialTimeout time.Duration
	// HandshakeTimeout bounds the handshake on either side.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds writing one frame; a peer that stops reading has
	// its connection closed after it.
	WriteTimeout time.Duration
	// ReconnectBackoffMin and ReconnectBackoffMax bound the wait between
	// failed dials to one peer (exponential, with jitter).
	ReconnectBackoffMin time.Duration
	ReconnectBackoffMax time.Duration
}

// DefaultConfig returns the defaults for a node with the given id, listening
// on an ephemeral loopback port.
func DefaultConfig(id zab.PeerID) Config {
	return Config{
		ID:                   id,
		BindAddr:             "127.0.0.1:0",
		Cluster:              "coord",
		MaxFrameSize:         16 << 20,
		MaxBatch:             1024,
		SendQueueSize:        8192,
		RecvBufferSize:       1024,
		MaxPendingHandshakes: 64,
		// A peer has one connection in a handshake at a time; a few more
		// cover reconnects racing old attempts.
		MaxPendingHandshakesPerHost: 8,
		DialTimeout:                 2 * time.Second,
		HandshakeTimeout:            2 * time.Second,
		WriteTimeout:                5 * time.Second,
		ReconnectBackoffMin:         20 * time.Millisecond,
		ReconnectBackoffMax:         2 * time.Second,
	}
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig(c.ID)
	if c.BindAddr == "" {
		c.BindAddr = d.BindAddr
	}
	if c.Cluster == "" {
		c.Cluster = d.Cluster
	}
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setInt(&c.MaxFrameSize, d.MaxFrameSize)
	setInt(&c.MaxBatch, d.MaxBatch)
	setInt(&c.SendQueueSize, d.SendQueueSize)
	setInt(&c.RecvBufferSize, d.RecvBufferSize)
	setInt(&c.MaxPendingHandshakes, d.MaxPendingHandshakes)
	setInt(&c.MaxPendingHandshakesPerHost, d.MaxPendingHandshakesPerHost)
	c.MaxPendingHandshakesPerHost = min(c.MaxPendingHandshakesPerHost, c.MaxPendingHandshakes)
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&c.DialTimeout, d.DialTimeout)
	setDur(&c.HandshakeTimeout, d.HandshakeTimeout)
	setDur(&c.WriteTimeout, d.WriteTimeout)
	setDur(&c.ReconnectBackoffMin, d.ReconnectBackoffMin)
	setDur(&c.ReconnectBackoffMax, d.ReconnectBackoffMax)
	if c.SecretKey != nil {
		c.SecretKey = append([]byte(nil), c.SecretKey...)
	}
	return c
}

// Validate reports every invalid field, each named, joined in one error that
// wraps ErrInvalidConfig. Zero fields are valid (they take defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
	}
	if c.ID == 0 {
		bad("ID", "must be non-zero")
	}
	if len(c.Cluster) > maxClusterLen {
		bad("Cluster", "%d bytes, at most %d", len(c.Cluster), maxClusterLen)
	}
	if len(c.SecretKey) != 0 && len(c.SecretKey) < minSecretKey {
		bad("SecretKey", "%d bytes, at least %d", len(c.SecretKey), minSecretKey)
	}
	if c.MaxFrameSize < 1024 || uint64(c.MaxFrameSize) > 1<<31 {
		bad("MaxFrameSize", "%d, must be in [1024, 2^31]", c.MaxFrameSize)
	}
	if c.MaxBatch < 1 || c.MaxBatch > MaxMessagesPerFrame {
		bad("MaxBatch", "%d, must be in [1, %d]", c.MaxBatch, MaxMessagesPerFrame)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"SendQueueSize", c.SendQueueSize}, {"RecvBufferSize", c.RecvBufferSize}, {"MaxPendingHandshakes", c.MaxPendingHandshakes},
		{"MaxPendingHandshakesPerHost", c.MaxPendingHandshakesPerHost}} {
		if f.v < 1 {
			bad(f.name, "%d, must be positive", f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"DialTimeout", c.DialTimeout}, {"HandshakeTimeout", c.HandshakeTimeout}, {"WriteTimeout", c.WriteTimeout},
		{"ReconnectBackoffMin", c.ReconnectBackoffMin}, {"ReconnectBackoffMax", c.ReconnectBackoffMax},
	} {
		if f.v < 0 {
			bad(f.name, "%v, must be positive", f.v)
		}
	}
	if c.ReconnectBackoffMin > c.ReconnectBackoffMax {
		bad("ReconnectBackoffMin", "%v exceeds ReconnectBackoffMax %v", c.ReconnectBackoffMin, c.ReconnectBackoffMax)
	}
	return errors.Join(errs...)
}
