package recipes_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/coord-dev/coord/recipes"
)

func ExampleJoinGroup() {
	node, stop := exampleNode()
	defer stop()
	ctx := context.Background()

	// A dashboard follows the workers of a service.
	workers := recipes.NewGroup(recipes.NodeSessions(node), "/services/resizer")
	events := make(chan recipes.MemberEvent, 16)
	workers.Listen(func(ev recipes.MemberEvent) { events <- ev })
	if err := workers.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer workers.Close()
	show := func() {
		ev := <-events
		fmt.Println(strings.TrimSpace(fmt.Sprintf("%s %s %s", ev.Type, ev.Member.Name, ev.Member.Data)))
	}
	show()

	// A worker registers (an ephemeral node, registered again if its
	// session is lost) and reports its progress into its own node.
	me, err := recipes.JoinGroup(ctx, recipes.NodeSessions(node), "/services/resizer", "worker-1", []byte("0%"))
	if err != nil {
		fmt.Println(err)
		return
	}
	show()
	_ = me.Update(ctx, []byte("50%"))
	show()
	_ = me.Leave(ctx)
	show()
	fmt.Println(len(workers.Members()), "members")
	// Output:
	// loaded
	// joined worker-1 0%
	// updated worker-1 50%
	// left worker-1 50%
	// 0 members
}
