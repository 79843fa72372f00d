package recipes_test

import (
	"context"
	"fmt"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

func ExampleQueue() {
	node, stop := exampleNode()
	defer stop()
	ctx := context.Background()
	s, _ := node.Session(ctx, coord.SessionOptions{})

	jobs := recipes.NewQueue(s, "/queues/jobs")
	_ = jobs.Put(ctx, []byte("resize image 1"))
	_ = jobs.Put(ctx, []byte("resize image 2"))
	_ = jobs.PutPriority(ctx, []byte("page the operator"), -1) // lower goes first

	for range 3 {
		job, err := jobs.Take(ctx) // waits while the queue is empty
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(string(job))
	}
	// Output:
	// page the operator
	// resize image 1
	// resize image 2
}
