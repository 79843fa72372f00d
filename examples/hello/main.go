// Command hello is the README's program: one node of a 3-node coord cluster
// that takes a lock and, holding it, makes a fenced write. Run it 3 times:
// go run ./examples/hello -id 1 (then -id 2, -id 3); Ctrl-C stops a node.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

func main() {
	id := flag.Uint64("id", 1, "this node's id: 1, 2 or 3")
	seeds := flag.String("seeds", "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003", "gossip addresses")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	cfg := coord.LocalConfig(*id) // coord.LANConfig(*id) on a real network
	cfg.Seeds = strings.Split(*seeds, ",")
	cfg.GossipBindAddr = cfg.Seeds[*id-1] // this node's own gossip address
	cfg.Voters = []uint64{1, 2, 3}
	node, err := coord.JoinContext(ctx, cfg) // waits for a quorum to elect a leader
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close(context.Background())
	session, err := node.Session(ctx, coord.SessionOptions{})
	if err != nil {
		log.Fatal(err)
	}

	lease, err := recipes.NewLock(session, "/locks/hello", nil).Acquire(ctx)
	if err != nil {
		log.Fatal(err)
	}
	// The critical section. The write is fenced: lease.Guard() makes the Multi
	// commit only while this lease holds. (Elsewhere, pass lease.Token() on.)
	_, err = session.Multi(ctx, lease.Guard(),
		coord.CreateOp("/hello-", []byte(fmt.Sprint(*id)), coord.PersistentSequential))
	fmt.Printf("node %d: held the lock, token %d, wrote: %v\n", *id, lease.Token(), err == nil)
	lease.Release(ctx)
	<-ctx.Done() // stay in the cluster until Ctrl-C
}
