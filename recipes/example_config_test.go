package recipes_test

import (
	"context"
	"fmt"

	"github.com/coord-dev/coord/recipes"
)

func ExampleConfig() {
	node, stop := exampleNode()
	defer stop()
	ctx := context.Background()

	type Limits struct {
		MaxConns int  `json:"max_conns"`
		ReadOnly bool `json:"read_only"`
	}
	// Every replica of a service follows the same znode.
	limits, err := recipes.NewConfig(ctx, recipes.NodeSessions(node), "/config/limits", recipes.ConfigOptions[Limits]{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer limits.Close()
	fmt.Println("exists:", limits.Get().Exists)

	// Any replica changes it with a compare-and-set; concurrent updates
	// are retried, never lost.
	_, _, err = limits.Update(ctx, func(old Limits) (Limits, error) {
		old.MaxConns = 100
		return old, nil
	})
	fmt.Println("update:", err)
	v := limits.Get()
	fmt.Printf("%+v version %d\n", v.V, v.Stat.Version)

	changes, unsubscribe := limits.Subscribe()
	defer unsubscribe()
	<-changes // the current value comes first
	_, _, _ = limits.Update(ctx, func(old Limits) (Limits, error) {
		old.ReadOnly = true
		return old, nil
	})
	next := <-changes
	fmt.Printf("changed to %+v\n", next.V)
	// Output:
	// exists: false
	// update: <nil>
	// {MaxConns:100 ReadOnly:false} version 0
	// changed to {MaxConns:100 ReadOnly:true}
}
