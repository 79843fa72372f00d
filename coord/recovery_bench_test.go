package coord

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
	"github.com/coord-dev/coord/zab/tcp"
	"github.com/coord-dev/coord/zab/wal"
)

// BenchmarkRecovery1M measures a node's start from a data directory holding
// a snapshot of 1M znodes (1,000 parents of 1,000 children, 16 bytes each)
// and 10,000 logged txns after it: until the state machine has applied the
// whole log. Run with -benchtime=1x; building the fixture takes a while.
func BenchmarkRecovery1M(b *testing.B) {
	const parents, children, logged = 1000, 1000, 10000
	dir := b.TempDir()
	t := tree.New(tree.Options{})
	zxid := int64(zab.NewZxid(1, 0))
	data := make([]byte, 16)
	apply := func(op tree.Op) {
		zxid++
		if r := t.Apply(tree.Txn{Zxid: zxid, Time: 1, Op: op}); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	for p := 0; p < parents; p++ {
		apply(tree.Op{Type: tree.OpCreate, Path: fmt.Sprintf("/p%03d", p)})
		for c := 0; c < children; c++ {
			apply(tree.Op{Type: tree.OpCreate, Path: fmt.Sprintf("/p%03d/c%04d", p, c), Data: data})
		}
	}
	snaps, err := wal.OpenSnapshotStore(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	info, err := snaps.Write(uint64(zxid), func(w io.Writer) error { _, err := t.WriteSnapshot(w); return err })
	if err != nil {
		b.Fatal(err)
	}
	l, err := wal.Open(dir, wal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < logged; i++ {
		zxid++
		req, _ := encodeRequest(&request{Origin: 9, Time: 1, Op: tree.Op{Type: tree.OpSetData, Path: "/p000/c0000", Data: data, Version: -1}})
		if err := l.Append(wal.Record{Zxid: uint64(zxid), Data: req}); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Sync(); err != nil {
		b.Fatal(err)
	}
	l.Close()
	if err := wal.WriteEpoch(dir, wal.AcceptedEpochFile, 1); err != nil {
		b.Fatal(err)
	}
	if err := wal.WriteEpoch(dir, wal.CurrentEpochFile, 1); err != nil {
		b.Fatal(err)
	}
	b.Logf("fixture: %d znodes, snapshot %d MB, %d logged txns", t.NodeCount(), info.Size>>20, logged)

	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		tr, err := tcp.New(tcp.Config{ID: 1, BindAddr: "127.0.0.1:0", Cluster: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		f := newFSM(tree.New(tree.Options{}))
		n, err := zab.StartNode(zab.NodeConfig{
			Core:          zab.Config{ID: 1, Voters: []zab.PeerID{1}},
			Transport:     tr,
			StateMachine:  f,
			DataDir:       dir,
			TickInterval:  10 * time.Millisecond,
			SnapshotEvery: 1 << 30,
		})
		if err != nil {
			b.Fatal(err)
		}
		restored := time.Since(start)
		for f.tree.LastZxid() < zxid {
			time.Sleep(time.Millisecond)
		}
		total := time.Since(start)
		n.Close()
		if f.tree.NodeCount() != t.NodeCount() {
			b.Fatalf("recovered %d znodes, want %d", f.tree.NodeCount(), t.NodeCount())
		}
		b.ReportMetric(restored.Seconds(), "s-snapshot+log-load")
		b.ReportMetric(total.Seconds(), "s-until-applied")
	}
}
