package recipes_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

func ExampleElection() {
	node, stop := exampleNode()
	defer stop()
	ctx := context.Background()
	s, _ := node.Session(ctx, coord.SessionOptions{})

	watcher := recipes.NewElection(recipes.NodeSessions(node), "/election/api", "watcher")
	octx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes := watcher.Observe(octx)
	fmt.Printf("leader: %q\n", (<-changes).Name)

	e := recipes.NewElection(recipes.FixedSession(s), "/election/api", "node-1")
	_, _ = e.Campaign(ctx, []byte("10.0.0.1:80"))
	l := <-changes
	fmt.Printf("leader: %q at %s\n", l.Name, l.Value)
	_ = e.Proclaim(ctx, []byte("10.0.0.1:8080"))
	l = <-changes
	fmt.Printf("leader: %q at %s\n", l.Name, l.Value)
	_ = e.Resign(ctx)
	fmt.Printf("leader: %q\n", (<-changes).Name)
	// Output:
	// leader: ""
	// leader: "node-1" at 10.0.0.1:80
	// leader: "node-1" at 10.0.0.1:8080
	// leader: ""
}

// Run is a leader loop: fn runs while this candidate leads, with a context
// cancelled the moment leadership may be lost.
func ExampleElection_Run() {
	node, stop := exampleNode()
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	e := recipes.NewElection(recipes.NodeSessions(node), "/election/scheduler", "node-1")
	err := e.Run(ctx, nil, func(leaderCtx context.Context) error {
		fmt.Println("leading: schedule jobs until leaderCtx ends")
		// ... work, checking leaderCtx.Done() ...
		return errors.New("done for today")
	})
	fmt.Println(err)
	// Output:
	// leading: schedule jobs until leaderCtx ends
	// done for today
}
