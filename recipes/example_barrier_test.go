package recipes_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

func ExampleBarrier() {
	node, stop := exampleNode()
	defer stop()
	ctx := context.Background()
	s, _ := node.Session(ctx, coord.SessionOptions{})

	migration := recipes.NewBarrier(s, "/barriers/migration")
	_ = migration.Set(ctx) // raised until the schema migration is done

	done := make(chan struct{})
	go func() {
		_ = migration.Wait(ctx) // every server waits for the gate
		fmt.Println("serving")
		close(done)
	}()
	fmt.Println("migrating")
	_ = migration.Remove(ctx)
	<-done
	// Output:
	// migrating
	// serving
}

func ExampleDoubleBarrier() {
	node, stop := exampleNode()
	defer stop()
	ctx := context.Background()

	var wg sync.WaitGroup
	var mu sync.Mutex
	var log []string
	for _, name := range []string{"a", "b", "c"} {
		s, _ := node.Session(ctx, coord.SessionOptions{})
		b := recipes.NewDoubleBarrier(s, "/barriers/batch", name, 3)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = b.Enter(ctx) // returns once all three are in
			mu.Lock()
			log = append(log, "compute")
			mu.Unlock()
			_ = b.Leave(ctx) // returns once all three are out
		}()
	}
	wg.Wait()
	fmt.Println(log)
	// Output:
	// [compute compute compute]
}
