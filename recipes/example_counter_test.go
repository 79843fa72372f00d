package recipes_test

import (
	"context"
	"fmt"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

func ExampleCounter() {
	node, stop := exampleNode()
	defer stop()
	ctx := context.Background()
	s, _ := node.Session(ctx, coord.SessionOptions{})

	hits := recipes.NewCounter(s, "/stats/hits")
	view, _ := hits.Watch(ctx, recipes.FixedSession(s)) // a live view
	defer view.Close()

	v, _ := hits.Add(ctx, 5)
	fmt.Println("after add:", v)
	ok, _ := hits.CompareAndSet(ctx, 4, 100)
	fmt.Println("swapped 4 for 100:", ok)
	ok, _ = hits.CompareAndSet(ctx, 5, 100)
	fmt.Println("swapped 5 for 100:", ok)
	v, _ = hits.Get(ctx)
	fmt.Println("now:", v)
	changes, unsubscribe := view.Subscribe()
	defer unsubscribe()
	for v := range changes { // the view follows shortly after
		if v.V == 100 {
			fmt.Println("view:", v.V)
			break
		}
	}
	// Output:
	// after add: 5
	// swapped 4 for 100: false
	// swapped 5 for 100: true
	// now: 100
	// view: 100
}
