// Command lock is one node of a coord cluster that takes a distributed lock
// in turn with the others and, while it holds it, adds one to a shared
// counter with a fenced write. Run three, one per terminal (or all three
// with examples/run.sh lock), and stop any one with Ctrl-C or kill -9: the
// others carry on.
//
//	go run ./examples/lock -id 1
//	go run ./examples/lock -id 2
//	go run ./examples/lock -id 3
package main

import (
	"context"
	"strconv"
	"time"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/examples/demo"
	"github.com/coord-dev/coord/recipes"
)

func main() {
	me := demo.Flags() // -id, -seeds, -data
	me.Run(func(ctx context.Context, node *coord.Node) error {
		// A lock lives as long as the session that holds it.
		s, err := node.Session(ctx, coord.SessionOptions{})
		if err != nil {
			return err
		}
		s.Create(ctx, "/counter", []byte("0"), coord.Persistent) // ErrNodeExists but on the first node
		lock := recipes.NewLock(s, "/locks/counter", []byte(strconv.FormatUint(me.ID(), 10)))
		for ctx.Err() == nil {
			lease, err := lock.Acquire(ctx)
			if err != nil { // Ctrl-C, or the session was lost
				me.Printf("no lock: %v", err)
				demo.Sleep(ctx, nil, time.Second)
				continue
			}
			// The critical section. The write is fenced: with lease.Guard()
			// the Multi commits only while the lease's lock node exists, so a
			// holder whose session expired while it was paused cannot
			// overwrite the next holder's work. (An outside resource would
			// instead refuse a lease.Token() lower than the highest it saw.)
			data, st, err := s.Get(ctx, "/counter")
			n, _ := strconv.Atoi(string(data))
			if err == nil {
				_, err = s.Multi(ctx, lease.Guard(),
					coord.SetOp("/counter", []byte(strconv.Itoa(n+1)), st.Version))
			}
			if err == nil {
				me.Printf("holds the lock, token %d: counter %d -> %d", lease.Token(), n, n+1)
			} else {
				me.Printf("holds the lock, token %d: write refused: %v", lease.Token(), err)
			}
			// Work a while, unless the lease is lost, then let the next one
			// in (after Ctrl-C, closing the node frees it with the session).
			demo.Sleep(ctx, lease.Done(), 500*time.Millisecond)
			lease.Release(ctx)
		}
		return ctx.Err()
	})
}
