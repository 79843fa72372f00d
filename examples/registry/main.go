// Command registry is one node of a coord cluster that registers an
// instance of its service in a group (recipes.JoinGroup) and watches the
// group (recipes.Group): every node prints the members as they come and go.
// Run three, one per terminal (or all three with
// examples/run.sh registry -churn 3s), then stop one with Ctrl-C and watch
// the others see it leave:
//
//	go run ./examples/registry -id 1
//	go run ./examples/registry -id 2
//	go run ./examples/registry -id 3
package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/examples/demo"
	"github.com/coord-dev/coord/recipes"
)

const group = "/services/api"

func main() {
	me := demo.Flags() // -id, -seeds, -data
	churn := flag.Duration("churn", 0, "leave the group and join it again this often (0: stay)")
	me.Run(func(ctx context.Context, node *coord.Node) error {
		sessions := recipes.NodeSessions(node) // the node's session, a new one if it is lost

		// The registry view: a live list of the group, with an event per
		// change. Listeners run one at a time, in the order coord applied
		// the changes.
		view := recipes.NewGroup(sessions, group)
		members := map[string]string{}
		loaded := false
		view.Listen(func(ev recipes.MemberEvent) {
			switch ev.Type {
			case recipes.MemberJoined, recipes.MemberUpdated:
				members[ev.Member.Name] = string(ev.Member.Data)
			case recipes.MemberLeft:
				delete(members, ev.Member.Name)
			case recipes.MembersLoaded:
				loaded = true
				me.Printf("members: %s", list(members))
				return
			}
			if loaded {
				me.Printf("%s %s: members: %s", ev.Member.Name, strings.ToLower(strings.TrimPrefix(ev.Type.String(), "Member")), list(members))
			}
		})
		if err := view.Start(ctx); err != nil {
			return err
		}
		defer view.Close()

		// This node's registration: an ephemeral node with its address as
		// metadata, registered again if its session is lost.
		name := fmt.Sprintf("node-%d", me.ID())
		addr := fmt.Sprintf("10.0.0.%d:8080", me.ID())
		for {
			member, err := recipes.JoinGroup(ctx, sessions, group, name, []byte(addr))
			if err != nil {
				return err // Ctrl-C
			}
			me.Printf("registered as %s at %s", name, addr)
			if *churn == 0 {
				<-ctx.Done()
			} else { // nodes stay for different times, so they come and go apart
				demo.Sleep(ctx, member.Done(), *churn+time.Duration(me.ID()-1)**churn/3)
			}
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			err = member.Leave(lctx)
			cancel()
			me.Printf("left the group (%v)", errOrOK(err))
			if ctx.Err() != nil {
				return ctx.Err()
			}
			demo.Sleep(ctx, nil, *churn)
		}
	})
}

// list formats the members as name=address, sorted.
func list(members map[string]string) string {
	var out []string
	for name, addr := range members {
		out = append(out, name+"="+addr)
	}
	if len(out) == 0 {
		return "(none)"
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

func errOrOK(err error) string {
	if err != nil {
		return err.Error()
	}
	return "ok"
}
