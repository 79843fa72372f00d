package recipes_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

func ExampleLock() {
	node, stop := exampleNode()
	defer stop()
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
	// A Lock value is one holder: it does not wait for itself.
	_, err = lock.Acquire(ctx)
	fmt.Println(errors.Is(err, recipes.ErrAlreadyHeld))
	fmt.Println(lease.Release(ctx))
	// Output:
	// holding /locks/nightly-report/lock-0000000000
	// true
	// <nil>
}

// A write into coord guarded by the lease applies only while the lease's
// node exists, in the cluster's own order.
func ExampleLease_Guard() {
	node, stop := exampleNode()
	defer stop()
	ctx := context.Background()
	s, _ := node.Session(ctx, coord.SessionOptions{})
	_, _ = s.Create(ctx, "/report", nil, coord.Persistent)

	lease, _ := recipes.NewLock(s, "/locks/report", nil).Acquire(ctx)
	_, err := s.Multi(ctx, lease.Guard(), coord.SetOp("/report", []byte("done by the holder"), coord.AnyVersion))
	fmt.Println("while held:", err)
	_ = lease.Release(ctx)
	_, err = s.Multi(ctx, lease.Guard(), coord.SetOp("/report", []byte("too late"), coord.AnyVersion))
	fmt.Println("after release:", errors.Is(err, coord.ErrNoNode))
	data, _, _ := s.Get(ctx, "/report")
	fmt.Println(string(data))
	// Output:
	// while held: <nil>
	// after release: true
	// done by the holder
}

func ExampleRWLock() {
	node, stop := exampleNode()
	defer stop()
	ctx := context.Background()
	s, _ := node.Session(ctx, coord.SessionOptions{})

	// Two readers share the lock; a writer waits for both.
	r1, _ := recipes.NewRWLock(s, "/locks/catalog", nil).RLock(ctx)
	r2, _ := recipes.NewRWLock(s, "/locks/catalog", nil).RLock(ctx)
	fmt.Println("two readers")
	written := make(chan int64)
	go func() {
		w, _ := recipes.NewRWLock(s, "/locks/catalog", nil).Lock(ctx)
		written <- w.Token()
		_ = w.Release(ctx)
	}()
	_ = r1.Release(ctx)
	_ = r2.Release(ctx)
	fmt.Println("writer's token above the readers':", <-written > r2.Token())
	// Output:
	// two readers
	// writer's token above the readers': true
}

func ExampleSemaphore() {
	node, stop := exampleNode()
	defer stop()
	ctx := context.Background()
	s, _ := node.Session(ctx, coord.SessionOptions{})

	// Two leases for three workers: the third waits for a release.
	var leases []*recipes.Lease
	for range 2 {
		l, _ := recipes.NewSemaphore(s, "/sem/crawlers", 2, nil).Acquire(ctx)
		leases = append(leases, l)
	}
	third := recipes.NewSemaphore(s, "/sem/crawlers", 2, nil)
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err := third.Acquire(tctx)
	cancel()
	fmt.Println("third while two are held:", err)
	_ = leases[0].Release(ctx)
	l, err := third.Acquire(ctx)
	fmt.Println("third after a release:", err)
	_ = l.Release(ctx)
	// Output:
	// third while two are held: context deadline exceeded
	// third after a release: <nil>
}

func ExampleMultiLock() {
	node, stop := exampleNode()
	defer stop()
	ctx := context.Background()
	s, _ := node.Session(ctx, coord.SessionOptions{})

	// Move money between two accounts: both locks, taken in one canonical
	// order whatever order they are named in, so two transfers in opposite
	// directions cannot deadlock.
	transfer := recipes.NewMultiLock(s, []string{"/locks/acct-b", "/locks/acct-a"}, nil)
	ml, err := transfer.Acquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, l := range ml.Leases() {
		fmt.Println("holding", l.Path())
	}
	fmt.Println(ml.Release(ctx))
	// Output:
	// holding /locks/acct-a/lock-0000000000
	// holding /locks/acct-b/lock-0000000000
	// <nil>
}
