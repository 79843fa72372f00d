package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/coord-dev/coord/internal/proposal"
	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
	"github.com/coord-dev/coord/zab/zabtest"
)

// Faults is a set of fault classes. A run draws its schedule from the seed
// whatever the set; a disabled class's actions are drawn but skipped, so
// the shrinker can leave classes out and keep the rest of the schedule.
type Faults uint16

// The fault classes.
const (
	// FaultNet: message loss and duplication rates.
	FaultNet Faults = 1 << iota
	// FaultPartition: isolating the leader, partitions, bridges, one-way
	// cuts (and the heals between them).
	FaultPartition
	// FaultCrash: crashes (one peer, the leader, every peer) and restarts.
	FaultCrash
	// FaultDisk: a crash in the middle of persisting a Ready (a prefix of
	// its writes survives) and failed fsyncs (fail-stop, restart later).
	FaultDisk
	// FaultSlowDisk: a peer's fsyncs take several ticks for a while (its
	// messages and applies wait for them).
	FaultSlowDisk
	// FaultPause: a process pause longer than the timeouts; messages sent
	// to it meanwhile are taken in late, its state kept.
	FaultPause
	// FaultClock: clock jumps, a burst of many ticks at once, or no tick
	// for a while; and wall-clock steps, ahead beyond the dedup window or
	// back, of the clock a leader stamps its writes with.
	FaultClock
	// FaultReconfig: voters added and removed (asked at any peer, the
	// leader itself included), drawn from a stream of their own so that
	// the other classes' schedule is the same with or without them.
	FaultReconfig
	// FaultStall: links that hold their messages for a long while and then
	// deliver them in order (zabtest.Sim.Stall: a TCP connection whose
	// packets stop getting through without breaking it), so that they
	// arrive after leader changes and retries; drawn from a stream of
	// their own, like FaultReconfig.
	FaultStall

	// AllFaults is every class.
	AllFaults = FaultNet | FaultPartition | FaultCrash | FaultDisk | FaultSlowDisk | FaultPause | FaultClock |
		FaultReconfig | FaultStall
)

var faultNames = []struct {
	f    Faults
	name string
}{{FaultNet, "net"}, {FaultPartition, "partition"}, {FaultCrash, "crash"}, {FaultDisk, "disk"},
	{FaultSlowDisk, "slowdisk"}, {FaultPause, "pause"}, {FaultClock, "clock"}, {FaultReconfig, "reconfig"}, {FaultStall, "stall"}}

// String lists the classes in f, comma-separated ("none" if empty).
func (f Faults) String() string {
	var names []string
	for _, n := range faultNames {
		if f&n.f != 0 {
			names = append(names, n.name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ",")
}

// ParseFaults parses a comma-separated list of class names (as String
// prints them; "" and "none" are the empty set, "all" every class).
func ParseFaults(s string) (Faults, error) {
	var f Faults
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		switch part {
		case "", "none":
			continue
		case "all":
			f |= AllFaults
			continue
		}
		found := false
		for _, n := range faultNames {
			if n.name == part {
				f |= n.f
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("sim: unknown fault class %q", part)
		}
	}
	return f, nil
}

// on reports whether the run uses fault class f.
func (r *runner) on(f Faults) bool { return r.cfg.Disable&f == 0 }

// reconfigure asks a random running peer to add or remove a random voter,
// about once in eight faults. Refusals (a change in progress, an unsynced
// peer, no live quorum left) are part of the test.
func (r *runner) reconfigure() {
	if !r.on(FaultReconfig) || r.reconf.IntN(8) != 0 {
		return
	}
	ids := r.c.s.IDs()
	at, target := ids[r.reconf.IntN(len(ids))], ids[r.reconf.IntN(len(ids))]
	if !r.c.running(at) {
		return
	}
	cc := zab.ConfChange{Type: zab.ConfAddVoter, ID: target}
	if slices.Contains(r.c.s.Node(at).Peer.Voters(), target) {
		cc.Type = zab.ConfRemoveVoter
	}
	_, err := r.c.s.ProposeConfig(at, cc)
	r.logf("fault: %v %d asked at %d: %v", cc.Type, target, at, err)
}

// driverFault applies one of the driver-level faults (disk, slow disk,
// pause, clock) number n, its parameters drawn from the seed.
func (r *runner) driverFault(n int) {
	c, ids := r.c, r.c.s.IDs()
	pick := func() zab.PeerID {
		// The leader half of the time: its faults matter most.
		if l := c.s.Leader(); l != 0 && r.rng.IntN(2) == 0 {
			return l
		}
		return ids[r.rng.IntN(len(ids))]
	}
	now := c.s.Now()
	switch n {
	case 0: // crash in the middle of the next write
		id := pick()
		min := 1 + r.rng.IntN(3) // 2 or 3 records: a sync, a batch
		if r.on(FaultDisk) && c.running(id) {
			c.s.CrashInPersist(id, min)
			at := now + 100 + r.rng.Int64N(500)
			r.restartAt[id] = at
			r.logf("fault: peer %d crashes in the middle of its next write of %d+ records (restart at %d)", id, min, at)
		}
	case 1: // failed fsync: fail-stop, restart later
		id := pick()
		min := 1 + r.rng.IntN(2)
		if r.on(FaultDisk) && c.running(id) {
			c.s.FailFsync(id, min)
			at := now + 100 + r.rng.Int64N(500)
			r.restartAt[id] = at
			r.logf("fault: peer %d's next fsync (of %d+ records) fails (restart at %d)", id, min, at)
		}
	case 2: // slow fsync for a while
		id := pick()
		delay := (1 + r.rng.Int64N(8)) * 10
		until := now + 200 + r.rng.Int64N(800)
		if r.on(FaultSlowDisk) {
			c.s.SlowDisk(id, delay, until)
			r.logf("fault: peer %d's fsyncs take %d until %d", id, delay, until)
		}
	case 3: // process pause beyond the timeouts
		id := pick()
		d := 60 + r.rng.Int64N(440)
		if r.on(FaultPause) && c.running(id) {
			c.s.Pause(id, d)
			r.logf("fault: peer %d pauses for %d", id, d)
		}
	case 4: // clock jump forward: a burst of ticks
		id := pick()
		k := 5 + r.rng.IntN(40)
		if r.on(FaultClock) && c.running(id) {
			r.logf("fault: peer %d's clock jumps %d ticks", id, k)
			c.s.TickBurst(id, k)
		}
	case 5: // clock stops: no tick for a while
		id := pick()
		d := 60 + r.rng.Int64N(340)
		if r.on(FaultClock) {
			c.s.StallTicks(id, d)
			r.logf("fault: peer %d's clock stops for %d", id, d)
		}
	case 6: // wall clock steps: ahead by more than the dedup window, or back
		id := pick()
		step := tree.DedupWindow + 1 + r.rng.Int64N(tree.DedupWindow)
		if r.rng.IntN(3) == 0 {
			step = -step
		}
		if r.on(FaultClock) {
			// The stamps this peer puts on the writes it appends as leader
			// read its wall clock: ahead, its next stamp makes every
			// replica forget the results it remembers for retries.
			c.skew[id] += step
			r.logf("fault: peer %d's wall clock steps %+d (now %+d)", id, step, c.skew[id])
		}
	}
}

// stalls drives FaultStall for a run, from a random stream of its own.
type stalls struct {
	rng *rand.Rand
	at  map[[2]zab.PeerID]int64 // when stalled links deliver what they held
}

func newStalls(seed uint64) *stalls {
	return &stalls{rng: rand.New(rand.NewPCG(seed, 0x57a11)), at: map[[2]zab.PeerID]int64{}}
}

// maybe stalls, about once in four calls, the links between a random peer
// and the leader (both ways, or one), for up to 2,000 units of virtual
// time (zab/tcp's writer may hold a frame for its 5 s WriteTimeout, and a
// dial backs off up to 2 s): a learner cut off this way loses its leader
// and fails its forwarded writes, whose clients retry, while its forwards
// wait in the link and reach the leader late.
func (st *stalls) maybe(s *zabtest.Sim, logf func(string, ...any)) {
	if st.rng.IntN(4) != 0 {
		return
	}
	ids := s.IDs()
	a, b := ids[st.rng.IntN(len(ids))], s.Leader()
	if b == 0 || b == a {
		b = ids[st.rng.IntN(len(ids))]
	}
	ways := st.rng.IntN(4) // 0: a -> b only, 1: b -> a only, else both
	until := s.Now() + 100 + st.rng.Int64N(1900)
	if a == b {
		return
	}
	for _, k := range [][2]zab.PeerID{{a, b}, {b, a}} {
		if ways == 0 && k[0] != a || ways == 1 && k[0] != b {
			continue
		}
		s.Stall(k[0], k[1])
		st.at[k] = max(st.at[k], until)
		logf("fault: link %d -> %d stalls until %d", k[0], k[1], until)
	}
}

// due ends the stalls whose time has come: the links deliver what they
// held.
func (st *stalls) due(s *zabtest.Sim, logf func(string, ...any)) {
	if len(st.at) == 0 {
		return
	}
	for _, a := range s.IDs() {
		for _, b := range s.IDs() {
			k := [2]zab.PeerID{a, b}
			if at, ok := st.at[k]; ok && s.Now() >= at {
				delete(st.at, k)
				held := s.Held(a, b)
				fwd := 0
				for _, m := range held {
					if m.Type == zab.MsgPropose {
						fwd += len(m.ReqIDs)
					}
				}
				s.Unstall(a, b)
				logf("fault: link %d -> %d delivers the %d messages it held (%d forwarded writes)", a, b, len(held), fwd)
			}
		}
	}
}

// forgetRetried plants Config.ForgetRetried in st, the verdict on an
// attempt whose outcome zab reported as err: every applied result that is
// not a duplicate counts as the write's only attempt.
func forgetRetried(st proposal.Step, err error) proposal.Step {
	if err == nil && st.Zxid != 0 && !errors.Is(st.Err, zab.ErrOutcomeUnknown) && !st.Result.Duplicate {
		st.Once = true
	}
	return st
}

// restartDue restarts the peers whose failed fsync stopped them, once
// their time has come.
func (r *runner) restartDue() {
	now := r.c.s.Now()
	for _, id := range r.c.s.IDs() {
		if at, ok := r.restartAt[id]; ok && now >= at {
			delete(r.restartAt, id)
			if !r.c.running(id) {
				r.c.restart(id)
				r.logf("fault: restart %d after its disk error", id)
			}
		}
	}
}

// highStart is the durable state every peer of a "high zxid" seed starts
// from: a history whose last epoch ran its counter to the very top (so the
// next leader had to start a new epoch), every peer holding a prefix of it,
// epochs near the top of the 31-bit range. The entries touch /h only, no
// key of the model.
type highStart struct {
	epoch uint32
	ents  []zab.Entry
	keep  map[zab.PeerID]int
}

// highEpoch is the epoch of a high seed's initial history: near the top of
// the epochs zab adopts from another peer (it refuses those above
// MaxEpoch-2^20 as forged). Zxids are int64 in the tree (as in coord's state
// machine and ZooKeeper), so an epoch at or above 2^31 would make them
// negative: see the package doc.
const highEpoch = zab.MaxEpoch - 1<<20 - 1000

func newHighStart(r *runner, ids []zab.PeerID) (*highStart, error) {
	h := &highStart{epoch: highEpoch, keep: map[zab.PeerID]int{}}
	n := 10 + r.rng.IntN(41)
	for i := range n {
		op := tree.Op{Type: tree.OpSetData, Path: "/h", Data: fmt.Appendf(nil, "h%d", i), Version: -1}
		if i == 0 {
			op = tree.Op{Type: tree.OpCreate, Path: "/h", Data: []byte("h0")}
		}
		data, err := proposal.Encode(&proposal.Request{Origin: 0, ReqID: 1<<50 + uint64(i), Op: op})
		if err != nil {
			return nil, err
		}
		h.ents = append(h.ents, zab.Entry{Zxid: zab.NewZxid(h.epoch, math.MaxUint32-uint32(n-1-i)), Data: data})
	}
	for _, id := range ids {
		h.keep[id] = max(1, n-r.rng.IntN(6))
	}
	return h, nil
}

// storage returns peer id's initial storage.
func (h *highStart) storage(id zab.PeerID) *zab.MemoryStorage {
	st := zab.NewMemoryStorage()
	st.SetHardState(zab.HardState{AcceptedEpoch: h.epoch, CurrentEpoch: h.epoch})
	if err := st.Append(h.ents[:h.keep[id]]); err != nil {
		panic(err)
	}
	return st
}
