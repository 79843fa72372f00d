package zab

import (
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
)

// Config configures a Peer. Times are in ticks: the driver calls Peer.Tick
// at a fixed interval (for example every 50ms) and chooses the limits to
// match, like ZooKeeper's tickTime, initLimit and syncLimit.
type Config struct {
	// ID is this peer's id. A peer that is not among the voters observes.
	ID PeerID
	// Voters is the initial voting ensemble. A quorum is a strict majority
	// of it. Once the log or a snapshot holds a configuration (see
	// ProposeConfig), that one is in force instead: the first leader of a
	// fresh ensemble commits Voters as its first entry, and every
	// synchronisation hands a learner the leader's configuration, so a peer
	// configured with other voters acts on the committed ones once synced.
	Voters []PeerID
	// Observers lists peers known to observe from the start. It is only
	// checked for overlap with Voters: any peer outside the voters may
	// observe.
	Observers []PeerID
	// Storage is the durable state the peer starts from and reads back.
	Storage Storage
	// Rand is the only source of randomness (election jitter). Nil means a
	// generator seeded from Seed and ID, so runs are reproducible.
	Rand *rand.Rand
	// Seed seeds the default Rand.
	Seed uint64
	// Logger receives role changes and anomalies. Nil discards them.
	Logger *slog.Logger
	// Stamp, if set, rewrites the data of each write a leader appends
	// (proposed locally or forwarded by a learner) before it is logged and
	// sent, so the application can record what the leader decides, such
	// as the time (hashicorp/raft's Log.AppendedAt). It runs on the
	// goroutine that owns the peer and must return new bytes, never alter
	// data in place. Nil leaves data as proposed.
	Stamp func(data []byte) []byte
	// Incarnation identifies this run of the peer: the request ids it
	// forwards need only increase within one incarnation (the leader keeps
	// them apart by it), so they need no clock and no disk. Give every run
	// a new one; zero draws one from Rand.
	Incarnation uint64
	// Applied is the last zxid the state machine had applied when the peer
	// (re)started; committed entries after it are handed out again. Zero
	// means the zxid of the storage's snapshot.
	Applied Zxid

	// HeartbeatTicks is the interval of leader pings. Default 1.
	HeartbeatTicks int
	// SyncLimit is how many ticks a serving leader may go without hearing
	// from a quorum before it steps down, and how long a synced learner
	// waits for its leader. Default 5.
	SyncLimit int
	// InitLimit bounds discovery plus synchronisation. Default 10.
	InitLimit int
	// ElectionTicks is the base interval at which a looking peer re-sends its
	// vote (jittered up to twice that). Default 2.
	ElectionTicks int
	// FinalizeTicks is how long a looking peer waits for better votes once a
	// quorum (but not every voter) agrees. Default 1.
	FinalizeTicks int
	// RetryTicks is how long a learner waits before re-sending a discovery,
	// synchronisation or forwarded request that made no progress. Default 3.
	RetryTicks int
	// MaxCounter is the largest zxid counter a leader uses before it forces a
	// new epoch. Default math.MaxUint32; tests make it small.
	MaxCounter uint32
	// MaxMsgEntries caps the entries in one message. Default 1024.
	MaxMsgEntries int
	// MaxMsgBytes caps the entry data (at least one entry always goes) and
	// the snapshot chunk in one message, to stay under the transport's
	// frame limit. Default 1 MiB.
	MaxMsgBytes int
	// MaxSnapSyncs caps the snapshots a leader streams at once (a snapshot
	// larger than MaxMsgBytes travels as a stream of chunks); learners
	// beyond it wait their turn, told so by MsgSnapWait, voters ahead of
	// observers (a waiting voter pauses an observer's stream). Default 2.
	MaxSnapSyncs int
	// SnapWindow is how many snapshot chunks a leader sends a learner
	// ahead of its acknowledgements, so a stream holds at most SnapWindow
	// × MaxMsgBytes in flight. Default 4.
	SnapWindow int
	// SnapSpool, if set, holds the bytes of a snapshot this peer receives
	// streamed as a learner until it is installed (a Node with a DataDir
	// sets a file there). Nil keeps them in memory.
	SnapSpool SnapSpool
}

// withDefaults returns a copy of c with zero fields defaulted.
func (c Config) withDefaults() Config {
	c.Voters = slices.Clone(c.Voters)
	c.Observers = slices.Clone(c.Observers)
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.HeartbeatTicks, 1)
	def(&c.SyncLimit, 5)
	def(&c.InitLimit, 10)
	def(&c.ElectionTicks, 2)
	def(&c.FinalizeTicks, 1)
	def(&c.RetryTicks, 3)
	def(&c.MaxMsgEntries, 1024)
	def(&c.MaxMsgBytes, 1<<20)
	def(&c.MaxSnapSyncs, 2)
	def(&c.SnapWindow, 4)
	if c.MaxCounter == 0 {
		c.MaxCounter = math.MaxUint32
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(c.Seed, uint64(c.ID)))
	}
	return c
}

// Validate reports the first problem of c (after defaults), wrapping
// ErrInvalidConfig and naming the field.
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, a...)...)
	}
	if c.ID == 0 {
		return bad("ID must not be zero")
	}
	if len(c.Voters) == 0 {
		return bad("Voters must not be empty")
	}
	seen := map[PeerID]bool{}
	for _, id := range append(slices.Clone(c.Voters), c.Observers...) {
		if id == 0 {
			return bad("Voters and Observers must not contain id 0")
		}
		if seen[id] {
			return bad("peer %d appears twice in Voters/Observers", id)
		}
		seen[id] = true
	}
	if c.Storage == nil {
		return bad("Storage must not be nil")
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"HeartbeatTicks", c.HeartbeatTicks}, {"SyncLimit", c.SyncLimit}, {"InitLimit", c.InitLimit},
		{"ElectionTicks", c.ElectionTicks}, {"FinalizeTicks", c.FinalizeTicks}, {"RetryTicks", c.RetryTicks},
		{"MaxMsgEntries", c.MaxMsgEntries}, {"MaxMsgBytes", c.MaxMsgBytes},
		{"MaxSnapSyncs", c.MaxSnapSyncs}, {"SnapWindow", c.SnapWindow}} {
		if f.v < 0 {
			return bad("%s must not be negative", f.name)
		}
	}
	if c.SyncLimit <= c.HeartbeatTicks {
		return bad("SyncLimit (%d) must exceed HeartbeatTicks (%d)", c.SyncLimit, c.HeartbeatTicks)
	}
	if c.InitLimit < c.SyncLimit {
		return bad("InitLimit (%d) must be at least SyncLimit (%d)", c.InitLimit, c.SyncLimit)
	}
	if c.MaxCounter < 2 {
		return bad("MaxCounter must be at least 2")
	}
	return nil
}
