package session

import (
	"flag"
	"math/rand/v2"
	"slices"
	"testing"
)

var replicaSeeds = flag.Int("session.replicaseeds", 100, "TestReplicaNeverExpiresALeaseHolder: seeds to run")
var replicaSeed = flag.Uint64("session.replicaseed", 0, "TestReplicaNeverExpiresALeaseHolder: run this seed only")

// TestReplicaNeverExpiresALeaseHolder runs random schedules of two
// replicas, a leader (which owns sessions too) and a follower that owns
// sessions, with starved ticks (gaps of up to twice the timeout), lost,
// late and duplicated messages, confirmations of the reign that come late
// or never, and leadership flaps, and checks the core's safety rule:
// when the leader decides to expire a session, its owner's lease has ended
// (Lost by its own clock), and no later ack extends it past that decision.
func TestReplicaNeverExpiresALeaseHolder(t *testing.T) {
	seeds := make([]uint64, *replicaSeeds)
	for i := range seeds {
		seeds[i] = uint64(i + 1)
	}
	if *replicaSeed != 0 {
		seeds = []uint64{*replicaSeed}
	}
	for _, seed := range seeds {
		if err := runReplicaSchedule(seed); err != "" {
			t.Fatalf("seed %d (-session.replicaseed=%d): %s", seed, seed, err)
		}
	}
}

type inflight struct {
	at   int64
	to   uint64
	from uint64
	m    Message
}

// confirmation is a LeaderConfirmed on its way to the leader's core: a
// quorum confirmed the reign at conf; it arrives at at.
type confirmation struct {
	at, conf int64
}

func runReplicaSchedule(seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, 7))
	tb := table{}
	reps := map[uint64]*Replica{}
	for _, id := range []uint64{1, 2} {
		r, err := NewReplica(ReplicaConfig{Self: id, Tick: ms(10), Origin: t0, Table: tb})
		if err != nil {
			return err.Error()
		}
		reps[id] = r
	}
	const timeout = 300
	var now int64
	next := ID(1)
	expiredAt := map[ID]int64{}
	var msgs []inflight
	var confs []confirmation
	type closeAt struct {
		at int64
		id ID
	}
	var closes []closeAt
	leaderUp := true
	fail := ""
	open := func(owner uint64) {
		id := next
		next++
		tb[id] = ms(timeout)
		reps[1].Created(id, ms(timeout), at(now))
		_ = reps[owner].Open(id, Config{Timeout: ms(timeout)}, at(now), at(now))
	}
	check := func() {
		for id, e := range expiredAt {
			for _, r := range reps {
				if st, ok := r.Status(id); ok && st != Lost {
					if _, end, _ := r.Lease(id); end.After(at(e)) {
						fail = "session " + id.String() + " expired by the leader while its owner's lease runs on"
					}
				}
			}
		}
	}
	handle := func(self uint64) {
		rd := reps[self].Ready()
		for _, ob := range rd.Messages {
			if rng.IntN(10) == 0 {
				continue // lost
			}
			copies := 1 + rng.IntN(2)*rng.IntN(2)
			for range copies {
				msgs = append(msgs, inflight{at: now + 1 + rng.Int64N(60), to: ob.To, from: self, m: ob.Msg})
			}
		}
		for _, e := range rd.Expire {
			if _, ok := expiredAt[e.Session]; !ok {
				expiredAt[e.Session] = now
			}
			// The closeSession commits a little later.
			closes = append(closes, closeAt{at: now + rng.Int64N(60), id: e.Session})
		}
		check()
	}
	for _, owner := range []uint64{1, 2, 2} {
		open(owner)
	}
	for step := 0; step < 3000 && fail == ""; step++ {
		gap := int64(10)
		if rng.IntN(50) == 0 {
			gap = rng.Int64N(2 * timeout) // a starved maintenance goroutine
		}
		now += gap
		if rng.IntN(200) == 0 {
			leaderUp = !leaderUp // a flap: the leader loses, then regains, its quorum
		}
		if rng.IntN(100) == 0 {
			open(1 + uint64(rng.IntN(2)))
		}
		reps[1].Tick(at(now), View{Leader: 1, Epoch: 1, Serving: leaderUp, Leading: leaderUp})
		handle(1)
		if leaderUp && rng.IntN(4) != 0 {
			// The quorum answers this tick's pings; the news reaches the
			// core late, or (one in four) never.
			confs = append(confs, confirmation{at: now + rng.Int64N(timeout), conf: now})
		}
		reps[2].Tick(at(now), View{Leader: 1, Epoch: 1, Serving: true})
		handle(2)
		slices.SortStableFunc(msgs, func(a, b inflight) int { return int(a.at - b.at) })
		for len(msgs) > 0 && msgs[0].at <= now {
			m := msgs[0]
			msgs = msgs[1:]
			reps[m.to].Receive(m.from, m.m, at(now))
			handle(m.to)
		}
		slices.SortStableFunc(closes, func(a, b closeAt) int { return int(a.at - b.at) })
		for len(closes) > 0 && closes[0].at <= now {
			c := closes[0]
			closes = closes[1:]
			delete(tb, c.id)
			for id, r := range reps {
				r.Closed(c.id, at(now))
				handle(id)
			}
		}
		slices.SortStableFunc(confs, func(a, b confirmation) int { return int(a.at - b.at) })
		for len(confs) > 0 && confs[0].at <= now {
			c := confs[0]
			confs = confs[1:]
			reps[1].LeaderConfirmed(1, at(c.conf), at(now))
			handle(1)
		}
	}
	return fail
}
