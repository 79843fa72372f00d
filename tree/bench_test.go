package tree

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// The benchmarks share one tree of 1M znodes: /b/pNNN/cNNN, 1000 parents of
// 1000 children each, 16 bytes of data per znode.
const (
	benchParents  = 1000
	benchChildren = 1000
	benchData     = 16
)

var (
	benchOnce     sync.Once
	benchTree     *applier
	benchHeapNode float64 // heap bytes per znode
	benchPathLen  float64 // average path length
	benchPaths    []string
	benchParentPs []string
)

func benchPath(p, c int) string { return fmt.Sprintf("/b/p%03d/c%03d", p, c) }

func loadBenchTree(b *testing.B) *applier {
	benchOnce.Do(func() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		a := newApplier(Options{})
		data := make([]byte, benchData)
		a.apply(0, Op{Type: OpCreate, Path: "/b"})
		var pathBytes int
		for p := 0; p < benchParents; p++ {
			a.apply(0, Op{Type: OpCreate, Path: fmt.Sprintf("/b/p%03d", p), Data: data})
			for c := 0; c < benchChildren; c++ {
				path := benchPath(p, c)
				pathBytes += len(path)
				if r := a.apply(0, Op{Type: OpCreate, Path: path, Data: data}); r.Err != nil {
					b.Fatal(r.Err)
				}
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		n := float64(a.t.NodeCount())
		benchHeapNode = float64(after.HeapAlloc-before.HeapAlloc) / n
		benchPathLen = float64(pathBytes) / float64(benchParents*benchChildren)
		benchTree = a
		for i := 0; i < benchParents*benchChildren; i++ {
			benchPaths = append(benchPaths, benchPath(i%benchParents, (i/benchParents)%benchChildren))
		}
		for p := 0; p < benchParents; p++ {
			benchParentPs = append(benchParentPs, fmt.Sprintf("/b/p%03d", p))
		}
	})
	return benchTree
}

func reportPerZnode(b *testing.B) {
	b.ReportMetric(benchHeapNode, "heapB/znode")
	b.ReportMetric(benchHeapNode-benchPathLen-benchData, "overheadB/znode")
}

func BenchmarkGet1M(b *testing.B) {
	a := loadBenchTree(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, _, err := a.t.Get(benchPaths[i%len(benchPaths)], nil); err != nil {
			b.Fatal(err)
		}
	}
	reportPerZnode(b)
}

func BenchmarkGetParallel1M(b *testing.B) {
	a := loadBenchTree(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, _, err := a.t.Get(benchPaths[i%len(benchPaths)], nil); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func BenchmarkSet1M(b *testing.B) {
	a := loadBenchTree(b)
	data := make([]byte, benchData)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r := a.apply(0, Op{Type: OpSetData, Path: benchPaths[i%len(benchPaths)], Data: data, Version: -1})
		if r.Err != nil {
			b.Fatal(r.Err)
		}
	}
}

func BenchmarkCreateDelete1M(b *testing.B) {
	a := loadBenchTree(b)
	data := make([]byte, benchData)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		p := benchParentPs[i%benchParents] + "/new"
		if r := a.apply(0, Op{Type: OpCreate, Path: p, Data: data}); r.Err != nil {
			b.Fatal(r.Err)
		}
		if r := a.apply(0, Op{Type: OpDelete, Path: p, Version: -1}); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
}

func BenchmarkChildren1M(b *testing.B) {
	a := loadBenchTree(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		names, _, err := a.t.Children(benchParentPs[i%benchParents], nil)
		if err != nil || len(names) != benchChildren {
			b.Fatal(err, len(names))
		}
	}
}

func BenchmarkSnapshot1M(b *testing.B) {
	a := loadBenchTree(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		var cw countWriter
		if _, err := a.t.WriteSnapshot(&cw); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(cw), "snapB")
	}
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// soakTree is the observers soak's tree (coord's TestProcessManyObservers):
// 100,000 znodes of 100 bytes under /fill.
func soakTree(b *testing.B) *applier {
	a := newApplier(Options{})
	a.apply(0, Op{Type: OpCreate, Path: "/fill"})
	data := make([]byte, 100)
	for k := range 100_000 {
		if r := a.apply(0, Op{Type: OpCreate, Path: fmt.Sprintf("/fill/k%06d", k), Data: data}); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	return a
}

// BenchmarkSnapshotSoak writes the soak's tree into a buffer sized for it
// (as zab's Node does).
func BenchmarkSnapshotSoak(b *testing.B) {
	a := soakTree(b)
	var buf bytes.Buffer
	if _, err := a.t.WriteSnapshot(&buf); err != nil {
		b.Fatal(err)
	}
	size := buf.Len()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		var buf bytes.Buffer
		buf.Grow(size)
		if _, err := a.t.WriteSnapshot(&buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRestoreSoak restores the soak's tree from its snapshot, as an
// observer does after its SNAP.
func BenchmarkRestoreSoak(b *testing.B) {
	a := soakTree(b)
	var buf bytes.Buffer
	if _, err := a.t.WriteSnapshot(&buf); err != nil {
		b.Fatal(err)
	}
	t := New(Options{})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := t.Restore(bytes.NewReader(buf.Bytes())); err != nil {
			b.Fatal(err)
		}
	}
}
