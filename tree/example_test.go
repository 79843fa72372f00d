package tree_test

import (
	"bytes"
	"fmt"

	"github.com/coord-dev/coord/tree"
)

// printer is a Watcher that prints each event.
type printer struct{ name string }

func (p *printer) Notify(ev tree.Event) {
	fmt.Printf("%s: %s %s @%d\n", p.name, ev.Type, ev.Path, ev.Zxid)
}

func Example() {
	t := tree.New(tree.Options{})
	zxid := int64(0)
	apply := func(session int64, op tree.Op) tree.Result {
		zxid++
		return t.Apply(tree.Txn{Zxid: zxid, Time: 1_700_000_000_000 + zxid, Session: session, Op: op})
	}

	apply(0, tree.Op{Type: tree.OpCreate, Path: "/app", Data: []byte("v1")})
	apply(0, tree.Op{Type: tree.OpCreateSession, Session: 42, Timeout: 5000})

	// A one-shot data watch and a persistent recursive watch.
	_, _, _ = t.Get("/app", &printer{"data"})
	_ = t.AddWatch("/app", &printer{"tree"}, true)

	r := apply(42, tree.Op{Type: tree.OpCreate, Path: "/app/lock-", Mode: tree.EphemeralSequential})
	fmt.Println("created", r.Path)
	r = apply(0, tree.Op{Type: tree.OpSetData, Path: "/app", Data: []byte("v2"), Version: 0})
	fmt.Println("version", r.Stat.Version)
	r = apply(0, tree.Op{Type: tree.OpSetData, Path: "/app", Version: 0})
	fmt.Println("stale write:", r.Err)

	// Closing the session deletes its ephemerals in the same txn.
	apply(0, tree.Op{Type: tree.OpCloseSession, Session: 42})
	names, _, _ := t.Children("/app", nil)
	fmt.Println("children after close:", names)

	// A snapshot rebuilds an identical tree.
	var buf bytes.Buffer
	at, _ := t.WriteSnapshot(&buf)
	copy, _ := tree.ReadSnapshot(&buf, tree.Options{})
	fmt.Println("snapshot at", at, "same digest:", copy.Digest() == t.Digest())
	// Output:
	// tree: NodeCreated /app/lock-0000000000 @3
	// created /app/lock-0000000000
	// data: NodeDataChanged /app @4
	// tree: NodeDataChanged /app @4
	// version 1
	// stale write: tree: version does not match: /app is at version 1, expected 0
	// tree: NodeDeleted /app/lock-0000000000 @6
	// children after close: []
	// snapshot at 6 same digest: true
}
