package gossip

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// maxParallelHeal bounds the concurrent state exchanges of one heal round,
// each of which may wait up to the TCP timeout for an unreachable address.
const maxParallelHeal = 8

// healLoop runs a heal round every HealInterval, or sooner when kicked
// (after a name conflict), until Close.
func (g *Gossip) healLoop() {
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.HealInterval)
	defer t.Stop()
	for {
		select {
		case <-g.closing:
			return
		case <-t.C:
		case <-g.kick:
		}
		g.healOnce()
	}
}

// healOnce pushes this node's state to every heal target and pulls theirs.
// One exchange across a healed partition is enough for memberlist to merge
// the two views (each side refutes the other's "dead" with a newer
// incarnation, which then spreads by gossip).
func (g *Gossip) healOnce() {
	targets := g.healTargets(time.Now())
	if len(targets) == 0 {
		return
	}
	g.healRounds.Add(1)
	g.log.Debug("gossip heal round", "targets", targets)
	sem := make(chan struct{}, maxParallelHeal)
	var wg sync.WaitGroup
	for _, a := range targets {
		select {
		case <-g.closing:
			wg.Wait()
			return
		case sem <- struct{}{}:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			n, err := g.ml.Join([]string{a})
			if n > 0 {
				g.healJoins.Add(1)
			} else {
				g.log.Debug("gossip heal exchange failed", "target", a, "err", err)
			}
		}()
	}
	wg.Wait()
}

// healTargets returns the addresses a heal round contacts, and forgets
// members dead or left for longer than ForgetAfter:
//   - the last address of every member believed dead (not those that left:
//     they meant to go);
//   - addresses of conflicting claims to a member's id, for a while;
//   - the seeds, while some member is dead or no peer is alive;
//   - every alive peer and seed, for a while after peers were seen to hold
//     this node's id at an old address, so they learn the new one.
func (g *Gossip) healTargets(now time.Time) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.left {
		return nil
	}
	set := make(map[string]bool)
	anyDead, alivePeers := false, 0
	reannounce := now.Before(g.reannounce)
	for id, r := range g.members {
		if id == g.cfg.NodeID {
			continue
		}
		switch r.m.State {
		case StateDead, StateLeft:
			if now.Sub(r.m.Since) > g.cfg.ForgetAfter {
				delete(g.members, id)
				continue
			}
			if r.m.State == StateDead {
				anyDead = true
				set[r.m.Addr] = true
			}
		default:
			alivePeers++
			if reannounce {
				set[r.m.Addr] = true
			}
		}
	}
	for a, until := range g.pending {
		if now.Before(until) {
			set[a] = true
		} else {
			delete(g.pending, a)
		}
	}
	if anyDead || alivePeers == 0 || reannounce {
		for _, s := range g.seeds {
			set[s] = true
		}
	}
	delete(set, g.self)
	out := make([]string, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	slices.SortFunc(out, strings.Compare)
	return out
}
