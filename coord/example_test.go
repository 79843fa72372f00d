package coord_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coord-dev/coord/coord"
)

// startOne starts a single-voter cluster on loopback, enough to show the API.
func startOne() (*coord.Node, func()) {
	cfg := coord.LocalConfig(1)
	cfg.Voters = []uint64{1}
	node, err := coord.Join(cfg)
	if err != nil {
		panic(err)
	}
	return node, func() { node.Close(context.Background()) }
}

func ExampleJoin() {
	// Each replica of a service joins with its own id, the same voters and
	// the gossip addresses of some others (Seeds). One voter here.
	cfg := coord.LocalConfig(1)
	cfg.Voters = []uint64{1}
	node, err := coord.Join(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer node.Close(context.Background())
	leader, epoch := node.Leader()
	fmt.Println("leader", leader, "epoch", epoch)
	// Output: leader 1 epoch 1
}

func ExampleNode_Create() {
	node, stop := startOne()
	defer stop()
	ctx := context.Background()

	p, _ := node.Create(ctx, "/jobs", []byte("queue"), coord.Persistent)
	fmt.Println(p)
	p, _ = node.Create(ctx, "/jobs/job-", nil, coord.PersistentSequential)
	fmt.Println(p)
	_, err := node.Create(ctx, "/jobs", nil, coord.Persistent)
	fmt.Println(errors.Is(err, coord.ErrNodeExists))
	_, err = node.Create(ctx, "/tmp", nil, coord.PersistentWithTTL, coord.WithTTL(time.Minute))
	fmt.Println(err)
	// Output:
	// /jobs
	// /jobs/job-0000000000
	// true
	// <nil>
}

func ExampleNode_Set() {
	node, stop := startOne()
	defer stop()
	ctx := context.Background()

	node.Create(ctx, "/config", []byte("v1"), coord.Persistent)
	data, st, _ := node.Get(ctx, "/config")
	fmt.Printf("%s at version %d\n", data, st.Version)
	// Compare-and-set: succeeds only at the version read.
	st, _ = node.Set(ctx, "/config", []byte("v2"), st.Version)
	fmt.Println("now version", st.Version)
	_, err := node.Set(ctx, "/config", []byte("lost update"), 0)
	fmt.Println(errors.Is(err, coord.ErrBadVersion))
	// Output:
	// v1 at version 0
	// now version 1
	// true
}

func ExampleNode_Multi() {
	node, stop := startOne()
	defer stop()
	ctx := context.Background()

	node.Create(ctx, "/a", nil, coord.Persistent)
	// All or nothing: the check fails, so /b is not created.
	res, err := node.Multi(ctx,
		coord.CreateOp("/b", nil, coord.Persistent),
		coord.CheckOp("/a", 7),
	)
	fmt.Println(errors.Is(err, coord.ErrBadVersion), res[0].Err, errors.Is(res[1].Err, coord.ErrBadVersion))
	_, ok, _ := node.Exists(ctx, "/b")
	fmt.Println("b exists:", ok)
	// Output:
	// true <nil> true
	// b exists: false
}

func ExampleNode_GetW() {
	node, stop := startOne()
	defer stop()
	ctx := context.Background()

	node.Create(ctx, "/flag", []byte("off"), coord.Persistent)
	_, _, changed, _ := node.GetW(ctx, "/flag")
	node.Set(ctx, "/flag", []byte("on"), coord.AnyVersion)
	ev := <-changed
	fmt.Println(ev.Type, ev.Path)
	// Output: NodeDataChanged /flag
}

func ExampleNode_Watch() {
	node, stop := startOne()
	defer stop()
	ctx := context.Background()

	w, _ := node.Watch(ctx, "/svc", true) // the subtree, until closed
	defer w.Close()
	node.Create(ctx, "/svc", nil, coord.Persistent)
	node.Create(ctx, "/svc/a", nil, coord.Persistent)
	node.Delete(ctx, "/svc/a", coord.AnyVersion)
	for range 3 {
		ev := <-w.C()
		fmt.Println(ev.Type, ev.Path)
	}
	// Output:
	// NodeCreated /svc
	// NodeCreated /svc/a
	// NodeDeleted /svc/a
}

func ExampleNode_Session() {
	node, stop := startOne()
	defer stop()
	ctx := context.Background()

	s, _ := node.Session(ctx, coord.SessionOptions{Timeout: 2 * time.Second})
	fmt.Println((<-s.Events()).Type)
	node.Create(ctx, "/members", nil, coord.Persistent)
	me, _ := s.Create(ctx, "/members/m-", nil, coord.EphemeralSequential)
	fmt.Println(me)
	// Closing the session deletes its ephemerals at once, everywhere.
	s.Close(ctx)
	names, _, _ := node.Children(ctx, "/members")
	fmt.Println(names)
	// Output:
	// Connected
	// /members/m-0000000000
	// []
}

func ExampleNode_Sync() {
	node, stop := startOne()
	defer stop()
	ctx := context.Background()

	node.Create(ctx, "/x", []byte("1"), coord.Persistent)
	// After Sync, a read on this node sees every write committed before it,
	// wherever it was made.
	if err := node.Sync(ctx); err != nil {
		fmt.Println(err)
		return
	}
	data, _, _ := node.Get(ctx, "/x")
	fmt.Println(string(data))
	// Output: 1
}

func ExampleNode_AddVoter() {
	first, stop := startOne()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Another replica joins as an observer: it is not among the voters, it
	// holds a full copy and serves reads. Seeds name any member's gossip
	// address.
	cfg := coord.LocalConfig(2)
	cfg.Voters = []uint64{1}
	cfg.Role = coord.RoleObserver
	cfg.Seeds = []string{first.Members()[0].GossipAddr}
	second, err := coord.Join(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer second.Close(context.Background())

	// Promote it, then take it out of the voters again: each change is
	// replicated like a write, one at a time.
	if err := first.AddVoter(ctx, 2); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("voters", first.Voters())
	if err := first.RemoveVoter(ctx, 2); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("voters", first.Voters())
	// Output:
	// voters [1 2]
	// voters [1]
}
