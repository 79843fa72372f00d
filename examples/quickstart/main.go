// Command quickstart starts a 3-node coord cluster in one process on
// 127.0.0.1 with temporary data directories, and shows what coord does: the
// nodes join and elect a leader, a write on one node is read on the others,
// a watch fires, an ephemeral node vanishes with its session, and the
// leader is killed to measure the fail-over. It exits by itself.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/coord-dev/coord/coord"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "coord-quickstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// 1. Three nodes join through gossip and elect a leader.
	start := time.Now()
	nodes, err := startCluster(ctx, dir, 3)
	if err != nil {
		return err
	}
	defer func() {
		for _, n := range nodes {
			if n != nil {
				n.Close(context.Background())
			}
		}
	}()
	leader, epoch := nodes[0].Leader()
	fmt.Printf("1. 3 nodes joined in %v; node %d leads epoch %d\n", time.Since(start).Round(time.Millisecond), leader, epoch)

	// 2. Write on one node, read on the others.
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	if _, err := n1.Create(ctx, "/config", []byte("color=blue"), coord.Persistent); err != nil {
		return err
	}
	for _, n := range []*coord.Node{n2, n3} {
		if err := n.Sync(ctx); err != nil {
			return err
		}
		data, st, err := n.Get(ctx, "/config")
		if err != nil {
			return err
		}
		fmt.Printf("2. node %d reads /config = %q (version %d)\n", n.ID(), data, st.Version)
	}

	// 3. A watch on node 3 sees a change made on node 2.
	_, _, changed, err := n3.GetW(ctx, "/config")
	if err != nil {
		return err
	}
	if _, err := n2.Set(ctx, "/config", []byte("color=green"), 0); err != nil {
		return err
	}
	ev := <-changed
	fmt.Printf("3. node 3 watch: %s %s at zxid %#x\n", ev.Type, ev.Path, ev.Zxid)

	// 4. An ephemeral node lives as long as its session.
	s, err := n2.Session(ctx, coord.SessionOptions{Timeout: time.Second})
	if err != nil {
		return err
	}
	if _, err := s.Create(ctx, "/workers", nil, coord.Persistent); err != nil && !errors.Is(err, coord.ErrNodeExists) {
		return err
	}
	me, err := s.Create(ctx, "/workers/w-", []byte("node 2"), coord.EphemeralSequential)
	if err != nil {
		return err
	}
	// Reads are local: node 1 may not have applied node 2's writes yet.
	// Sync makes it catch up first.
	if err := n1.Sync(ctx); err != nil {
		return err
	}
	kids, _, gone, err := n1.ChildrenW(ctx, "/workers")
	if err != nil {
		return err
	}
	fmt.Printf("4. %s registered; node 1 sees workers %v\n", me, kids)
	if err := s.Close(ctx); err != nil {
		return err
	}
	<-gone
	kids, _, err = n1.Children(ctx, "/workers")
	if err != nil {
		return err
	}
	fmt.Printf("   session closed; node 1 sees workers %v\n", kids)

	// 5. Kill the leader (no goodbye) and time the fail-over.
	leader, _ = n1.Leader()
	var survivor *coord.Node
	for i, n := range nodes {
		if n.ID() == leader {
			n.Shutdown() // a crash: no goodbye, no hand-off
			nodes[i] = nil
		} else if survivor == nil {
			survivor = n
		}
	}
	killed := time.Now()
	for {
		_, err := survivor.Set(ctx, "/config", []byte("color=red"), coord.AnyVersion)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("no fail-over: %w", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	newLeader, newEpoch := survivor.Leader()
	fmt.Printf("5. leader %d killed; node %d leads epoch %d; writes resumed after %v\n",
		leader, newLeader, newEpoch, time.Since(killed).Round(time.Millisecond))
	data, _, err := survivor.Get(ctx, "/config")
	if err != nil {
		return err
	}
	fmt.Printf("   /config = %q: nothing acknowledged was lost\n", data)
	return nil
}

// startCluster joins n nodes concurrently (each Join waits for a quorum).
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = coord.JoinContext(ctx, cfg)
		}()
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
