// Command lock is one node of a coord cluster that takes a distributed lock
// in turn with the others and, while it holds it, adds one to a shared
// counter with a fenced write. Run three, one per terminal, and stop any one
// with Ctrl-C: the other two carry on.
//
//	go run ./examples/lock -id 1
//	go run ./examples/lock -id 2
//	go run ./examples/lock -id 3
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

func main() {
	id := flag.Uint64("id", 1, "this node's id: its place in -seeds, from 1")
	seeds := flag.String("seeds", "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003", "every node's gossip address")
	data := flag.String("data", "", "directory for the log and snapshots (empty: in memory)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	cfg := coord.LocalConfig(*id) // LANConfig on a real network: slower timers
	cfg.Seeds = strings.Split(*seeds, ",")
	cfg.GossipBindAddr = cfg.Seeds[*id-1]
	host, _, _ := net.SplitHostPort(cfg.GossipBindAddr)
	cfg.ReplicationBindAddr = net.JoinHostPort(host, "0") // any free port; gossip tells the others
	for i := range cfg.Seeds {
		cfg.Voters = append(cfg.Voters, uint64(i+1))
	}
	cfg.DataDir = *data
	fmt.Printf("node %d: joining; Join waits for a quorum of %d voters\n", *id, len(cfg.Voters)/2+1)
	node, err := coord.JoinContext(ctx, cfg) // until Ctrl-C, not LocalConfig's 10s JoinTimeout
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close(context.Background())
	leader, epoch := node.Leader()
	fmt.Printf("node %d: joined; node %d leads epoch %d\n", *id, leader, epoch)

	// Locks live as long as the session that holds them.
	s, err := node.Session(ctx, coord.SessionOptions{})
	if err != nil {
		log.Fatal(err)
	}
	s.Create(ctx, "/counter", []byte("0"), coord.Persistent) // ErrNodeExists but on the first node
	lock := recipes.NewLock(s, "/locks/counter", []byte(fmt.Sprint("node ", *id)))
	for ctx.Err() == nil {
		lease, err := lock.Acquire(ctx)
		if err != nil { // cancelled by Ctrl-C, or the session was suspended
			fmt.Printf("node %d: no lock: %v\n", *id, err)
			sleep(ctx, nil, time.Second)
			continue
		}
		// The critical section. The write is fenced: the Multi commits only
		// if the lease's lock node still exists, so a holder whose session
		// expired while it was paused cannot overwrite the next holder's
		// work. (An outside resource would instead refuse a lease.Token()
		// lower than the highest one it has seen.)
		data, st, err := s.Get(ctx, "/counter")
		n, _ := strconv.Atoi(string(data))
		if err == nil {
			_, err = s.Multi(ctx, coord.CheckOp(lease.Path(), coord.AnyVersion),
				coord.SetOp("/counter", []byte(strconv.Itoa(n+1)), st.Version))
		}
		if err == nil {
			fmt.Printf("node %d: holds the lock, token %d: counter %d -> %d\n", *id, lease.Token(), n, n+1)
		} else {
			fmt.Printf("node %d: holds the lock, token %d: write refused: %v\n", *id, lease.Token(), err)
		}
		// Work a while, unless the lease is lost, then let the next one in
		// (after Ctrl-C, node.Close frees the lock with the session).
		sleep(ctx, lease.Done(), 500*time.Millisecond)
		lease.Release(ctx)
	}
	fmt.Printf("node %d: stopping\n", *id)
}

// sleep waits for d, or until ctx ends or stop closes.
func sleep(ctx context.Context, stop <-chan struct{}, d time.Duration) {
	select {
	case <-time.After(d):
	case <-stop:
	case <-ctx.Done():
	}
}
