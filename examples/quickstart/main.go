// Command quickstart tells what coord does in about 20 seconds, with three
// nodes of one imaginary service in this one process on 127.0.0.1 (each
// with a temporary data directory): the nodes join and elect a leader, a
// lock passes between them with growing fencing tokens, a leader election
// is observed, a configuration change reaches every node, a service
// registry sees members come and go, and the leader crashes while the
// others time the fail-over. It exits by itself; -pace 0 runs it without
// pauses.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

var pace = flag.Duration("pace", 1500*time.Millisecond, "pause between the steps of the story, and how long a lock or leadership is held (0: no pauses)")

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// say prints one line of the story; step lines start a new step after a pause.
func say(format string, args ...any) { fmt.Printf("    "+format+"\n", args...) }

func step(n int, title string) {
	time.Sleep(*pace)
	fmt.Printf("\n%d. %s\n", n, title)
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "coord-quickstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Println("coord quickstart: three nodes of one service, in this process, on 127.0.0.1")

	// 1. Each node joins with its id, the voters and the others' gossip
	// addresses, as three processes would; Join returns once synced with
	// an elected leader.
	fmt.Printf("\n1. Three nodes join through gossip and elect a leader\n")
	say("each calls coord.Join with its NodeID, Voters [1 2 3] and the three gossip addresses as Seeds")
	start := time.Now()
	nodes, err := startCluster(ctx, dir, 3)
	if err != nil {
		return err
	}
	defer func() {
		for _, n := range nodes {
			n.Close(context.Background()) // a no-op for the one that crashed
		}
	}()
	leader, epoch := nodes[0].Leader()
	say("nodes 1, 2 and 3 joined in %s; voters %v; node %d leads epoch %d", ms(time.Since(start)), nodes[0].Voters(), leader, epoch)

	// Each node's service gets its own session: ephemeral nodes, locks
	// and leadership live as long as it does.
	sessions := make([]*coord.Session, len(nodes))
	for i, n := range nodes {
		if sessions[i], err = n.Session(ctx, coord.SessionOptions{}); err != nil {
			return err
		}
	}

	step(2, "A lock passed between the nodes, with fencing tokens (recipes.Lock)")
	if err := lockStep(ctx, sessions); err != nil {
		return err
	}

	step(3, "Leader election, observed (recipes.Election)")
	if err := electionStep(ctx, sessions); err != nil {
		return err
	}

	step(4, "A configuration change reaches every node (recipes.Config)")
	if err := configStep(ctx, nodes); err != nil {
		return err
	}

	step(5, "A service registry: members come and go")
	if err := registryStep(ctx, nodes, sessions); err != nil {
		return err
	}

	step(6, "The leader crashes")
	return crashStep(ctx, nodes, sessions)
}

// lockStep: every node wants the same lock at once; they get it one after
// another, each with a higher fencing token.
func lockStep(ctx context.Context, sessions []*coord.Session) error {
	say("all three nodes call Acquire on /locks/report at once; each holds it for %s", ms(*pace))
	start := time.Now()
	var mu sync.Mutex
	var tokens []int64
	errs := make([]error, len(sessions))
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Go(func() {
			lock := recipes.NewLock(s, "/locks/report", []byte(fmt.Sprintf("node %d", i+1)))
			lease, err := lock.Acquire(ctx)
			if err != nil {
				errs[i] = err
				return
			}
			mu.Lock()
			tokens = append(tokens, lease.Token())
			say("%6s  node %d holds the lock, fencing token %d", ms(time.Since(start)), i+1, lease.Token())
			mu.Unlock()
			select { // the critical section: stop at once if the lease is lost
			case <-time.After(*pace):
			case <-lease.Done():
			}
			errs[i] = lease.Release(ctx)
			if errors.Is(errs[i], recipes.ErrLeaseLost) {
				// Not seen on an idle machine: the session went unacknowledged
				// for a while, so the holder had to stop at once.
				say("node %d's session was Suspended while it held the lock: Done closed and it stopped", i+1)
				errs[i] = nil
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if !slices.IsSorted(tokens) {
		return fmt.Errorf("fencing tokens out of order: %v", tokens)
	}
	say("the tokens grow with every holder: a store that keeps the highest token it has seen")
	say("refuses a holder that paused and lost the lock without noticing")
	return nil
}

// electionStep: the three campaign for one job with Election.Run; node 1
// follows the election with Observe. Each leader works a while and steps
// down (Run then queues it again, behind the others), so leadership passes
// from node to node.
func electionStep(ctx context.Context, sessions []*coord.Session) error {
	const dir = "/election/report-writer"
	var elections []*recipes.Election
	for i, s := range sessions {
		elections = append(elections, recipes.NewElection(recipes.FixedSession(s), dir, fmt.Sprintf("node %d", i+1)))
	}
	octx, stopObserving := context.WithCancel(ctx)
	defer stopObserving()
	leaders := elections[0].Observe(octx)
	<-leaders // the state now: nobody leads
	say("all three run for %s; node 1 observes it; each leader works %s, then steps down", dir, ms(*pace))
	start := time.Now()
	cctx, stopRunning := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopRunning(); wg.Wait() }()
	for _, e := range elections {
		wg.Go(func() {
			_ = e.Run(cctx, nil, func(leading context.Context) error {
				select { // the leader's work; leading ends if leadership may be lost
				case <-time.After(*pace):
				case <-leading.Done():
				}
				return nil
			})
		})
	}
	seen := map[string]bool{}
	for len(seen) < len(elections) {
		select {
		case l, ok := <-leaders:
			if !ok {
				return errors.New("observing the election ended")
			}
			if l.Token != 0 && !seen[l.Name] {
				seen[l.Name] = true
				say("%6s  node 1 observes: %s leads, token %d", ms(time.Since(start)), l.Name, l.Token)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// configStep: node 2 changes a typed configuration; every node's Config
// shows the new value.
func configStep(ctx context.Context, nodes []*coord.Node) error {
	type settings struct {
		Color string `json:"color"`
	}
	var subs []<-chan recipes.Value[settings]
	for _, n := range nodes {
		c, err := recipes.NewConfig[settings](ctx, recipes.NodeSessions(n), "/config/service", recipes.ConfigOptions[settings]{})
		if err != nil {
			return err
		}
		defer c.Close()
		ch, unsubscribe := c.Subscribe()
		defer unsubscribe()
		<-ch // the current value
		subs = append(subs, ch)
	}
	changer, err := recipes.NewConfig[settings](ctx, recipes.NodeSessions(nodes[1]), "/config/service", recipes.ConfigOptions[settings]{})
	if err != nil {
		return err
	}
	defer changer.Close()
	say("node 2 sets color=green with Config.Update (a compare-and-set)")
	start := time.Now()
	for {
		_, _, err := changer.Update(ctx, func(settings) (settings, error) { return settings{Color: "green"}, nil })
		if err == nil {
			break
		}
		// Setting a value is safe to repeat; Update leaves that choice to us
		// when a leader change hid whether its write landed.
		if !errors.Is(err, coord.ErrOutcomeUnknown) {
			return err
		}
	}
	for i, ch := range subs {
		for v := range ch {
			if v.V.Color == "green" {
				say("%6s  node %d's Config shows color=%s (version %d)", ms(time.Since(start)), i+1, v.V.Color, v.Stat.Version)
				break
			}
		}
	}
	return nil
}

// registryStep: each node registers its service instance in a group
// (recipes.JoinGroup: an ephemeral node); node 1 follows the group
// (recipes.Group) while one instance leaves.
func registryStep(ctx context.Context, nodes []*coord.Node, sessions []*coord.Session) error {
	const dir = "/services/report"
	view := recipes.NewGroup(recipes.NodeSessions(nodes[0]), dir)
	changed := make(chan struct{}, 1) // a change since awaitGroup last looked
	view.Listen(func(recipes.MemberEvent) {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	if err := view.Start(ctx); err != nil {
		return err
	}
	defer view.Close()
	members := make([]*recipes.Member, len(sessions))
	for i, s := range sessions {
		addr := fmt.Sprintf("10.0.0.%d:8080", i+1)
		m, err := recipes.JoinGroup(ctx, recipes.FixedSession(s), dir, fmt.Sprintf("node-%d", i+1), []byte(addr))
		if err != nil {
			return err
		}
		members[i] = m
		say("node %d registers its instance at %s", i+1, addr)
	}
	if err := awaitGroup(ctx, changed, view, 3); err != nil {
		return err
	}
	say("node 1's Group lists %s", names(view.Members()))
	time.Sleep(*pace)
	// The instance that leaves is not the leader's: the leader's stays for
	// the crash in step 6.
	leader, _ := nodes[0].Leader()
	gone := 2
	if nodes[gone].ID() == leader {
		gone = 1
	}
	say("node %d's instance stops: Member.Leave", gone+1)
	start := time.Now()
	if err := members[gone].Leave(ctx); err != nil {
		return err
	}
	if err := awaitGroup(ctx, changed, view, 2); err != nil {
		return err
	}
	say("%6s  node 1's Group lists %s", ms(time.Since(start)), names(view.Members()))
	return nil
}

// awaitGroup waits until the group view has n members.
func awaitGroup(ctx context.Context, changed <-chan struct{}, view *recipes.Group, n int) error {
	for len(view.Members()) != n {
		select {
		case <-changed:
		case <-view.Done():
			return view.Err()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func names(members []recipes.MemberInfo) string {
	var out []string
	for _, m := range members {
		out = append(out, m.Name)
	}
	return strings.Join(out, ", ")
}

// crashStep kills the leader (no goodbye) and times the fail-over from a
// survivor: a new leader, then writes again.
func crashStep(ctx context.Context, nodes []*coord.Node, sessions []*coord.Session) error {
	leader, epoch := nodes[0].Leader()
	var survivor *coord.Node
	for _, n := range nodes {
		if n.ID() != leader && survivor == nil {
			survivor = n
		}
	}
	if _, err := survivor.Create(ctx, "/orders", []byte("0"), coord.Persistent); err != nil && !errors.Is(err, coord.ErrNodeExists) {
		return err
	}
	// The crashed node's service instance stays registered until the new
	// leader expires its session.
	entry := fmt.Sprintf("/services/report/node-%d", leader)
	if err := survivor.Sync(ctx); err != nil {
		return err
	}
	_, registered, expired, err := survivor.ExistsW(ctx, entry)
	if err != nil {
		return err
	}
	say("node %d, the leader of epoch %d, crashes: Shutdown, as if its process died", leader, epoch)
	killed := time.Now()
	for _, n := range nodes {
		if n.ID() == leader {
			n.Shutdown()
		}
	}
	// Write through a survivor until a new leader accepts it.
	var firstErr error
	for {
		wctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		_, err := survivor.Set(wctx, "/orders", []byte("1"), coord.AnyVersion)
		cancel()
		if err == nil {
			break
		}
		if firstErr == nil {
			firstErr = err
			say("%6s  a write on node %d waits in vain (%v); retrying", ms(time.Since(killed)), survivor.ID(), err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("no fail-over: %w", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	newLeader, newEpoch := survivor.Leader()
	say("%6s  node %d leads epoch %d and writes succeed again: the fail-over took %s", ms(time.Since(killed)), newLeader, newEpoch, ms(time.Since(killed)))
	data, _, err := survivor.Get(ctx, "/orders")
	if err != nil {
		return err
	}
	say("/orders = %q on node %d: nothing acknowledged was lost", data, survivor.ID())
	if registered {
		<-expired
		say("%6s  node %d's registry entry is gone: its session expired (timeout %s)", ms(time.Since(killed)), leader, ms(sessions[leader-1].Timeout()))
	}
	return nil
}

// startCluster joins n voters concurrently (each Join waits for a quorum).
func startCluster(ctx context.Context, dir string, n int) ([]*coord.Node, error) {
	var seeds []string
	var voters []uint64
	for i := 1; i <= n; i++ {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		seeds = append(seeds, addr)
		voters = append(voters, uint64(i))
	}
	nodes := make([]*coord.Node, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		cfg := coord.LocalConfig(uint64(i + 1))
		cfg.GossipBindAddr = seeds[i]
		cfg.Seeds = seeds
		cfg.Voters = voters
		cfg.DataDir = fmt.Sprintf("%s/node%d", dir, i+1)
		wg.Go(func() { nodes[i], errs[i] = coord.JoinContext(ctx, cfg) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, n := range nodes {
			if n != nil {
				n.Close(context.Background())
			}
		}
		return nil, err
	}
	return nodes, nil
}

// freeAddr returns a 127.0.0.1 address whose port is free for both TCP and
// UDP (gossip listens on both). In a real deployment every node has a fixed
// gossip address, and each lists the others' as Seeds; here the three nodes
// share one machine, so they take free ports.
func freeAddr() (string, error) {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr, nil
		}
	}
}
