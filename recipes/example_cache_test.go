package recipes_test

import (
	"context"
	"fmt"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

func ExampleCache() {
	node, stop := exampleNode()
	defer stop()
	ctx := context.Background()
	_, _ = node.Create(ctx, "/routes", nil, coord.Persistent)
	_, _ = node.Create(ctx, "/routes/api", []byte("10.0.0.1"), coord.Persistent)

	routes := recipes.NewCache(recipes.NodeSessions(node), "/routes", recipes.CacheOptions{})
	events := make(chan recipes.CacheEvent, 16)
	routes.Listen(func(ev recipes.CacheEvent) { events <- ev })
	if err := routes.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer routes.Close()

	show := func() {
		ev := <-events
		fmt.Printf("%s %s %q\n", ev.Type, ev.Entry.Path, ev.Entry.Data)
	}
	show()
	show()
	show() // the initial load is complete
	_, _ = node.Set(ctx, "/routes/api", []byte("10.0.0.2"), coord.AnyVersion)
	show()
	_ = node.Delete(ctx, "/routes/api", coord.AnyVersion)
	show()
	fmt.Println(len(routes.Entries()), "cached")
	// Output:
	// created /routes ""
	// created /routes/api "10.0.0.1"
	// initialized  ""
	// changed /routes/api "10.0.0.2"
	// deleted /routes/api "10.0.0.2"
	// 1 cached
}
