// Command election is one node of a coord cluster that campaigns to be the
// one node doing some work (recipes.Election): the leader works, the others
// wait and observe, and when the leader stops or crashes another takes
// over. Run three, one per terminal (or all three with
// examples/run.sh election, which prints their process ids), then kill the
// leader with Ctrl-C or kill -9 and watch another take over:
//
//	go run ./examples/election -id 1
//	go run ./examples/election -id 2
//	go run ./examples/election -id 3
package main

import (
	"context"
	"fmt"
	"time"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/examples/demo"
	"github.com/coord-dev/coord/recipes"
)

func main() {
	me := demo.Flags() // -id, -seeds, -data
	me.Run(func(ctx context.Context, node *coord.Node) error {
		name := fmt.Sprintf("node-%d", me.ID())
		// The election's sessions: the node's default session, and its next
		// one if that is lost, so the candidate campaigns again.
		election := recipes.NewElection(recipes.NodeSessions(node), "/election/worker", name)

		// Everyone can follow who leads.
		go func() {
			for l := range election.Observe(ctx) {
				if l.Token == 0 {
					me.Printf("observes: nobody leads")
				} else {
					me.Printf("observes: %s leads (token %d)", l.Name, l.Token)
				}
			}
		}()

		// Run campaigns and calls the function each time this node is
		// elected, with a context cancelled the moment leadership may be
		// lost (its session Suspended). A crashed leader's session expires
		// after its timeout, and the next candidate is elected.
		me.Printf("campaigning as %s", name)
		return election.Run(ctx, nil, func(leading context.Context) error {
			me.Printf("leads: doing the work")
			for i := 1; ; i++ {
				demo.Sleep(leading, nil, 500*time.Millisecond)
				if leading.Err() != nil {
					me.Printf("no longer leads")
					return nil
				}
				me.Printf("work item %d done", i)
			}
		})
	})
}
