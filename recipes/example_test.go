package recipes_test

import (
	"context"
	"fmt"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

func ExampleLock() {
	cfg := coord.LocalConfig(1)
	cfg.Voters = []uint64{1}
	node, err := coord.Join(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer node.Close(context.Background())
	ctx := context.Background()
	s, _ := node.Session(ctx, coord.SessionOptions{})

	lock := recipes.NewLock(s, "/locks/nightly-report", []byte("worker-1"))
	lease, err := lock.Acquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Do the work while the lease holds; pass lease.Token() to the storage
	// you write to, so a stale holder can be refused.
	select {
	case <-lease.Done():
		fmt.Println("lost the lock: stop")
	default:
		fmt.Println("holding", lease.Path())
	}
	fmt.Println(lease.Release(ctx))
	// Output:
	// holding /locks/nightly-report/lock-0000000000
	// <nil>
}
