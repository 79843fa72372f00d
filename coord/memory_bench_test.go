package coord_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/internal/testcluster"
)

var memHeapProfile = flag.String("coord.mem.heapprofile", "",
	"BenchmarkMemory100k writes a heap profile of each size to this path plus \"-<nodes>\": the live heap at the measuring point (after the forced GC that follows the rss and heap-inuse figures)")

// BenchmarkMemory100k measures what 100k znodes of 64 bytes cost in memory
// (issue 13's targets: one node under 60 MiB RSS without a forced GC, three
// nodes in one process under 150 MiB). It fills a fresh cluster with DataDirs
// (8 sessions, Multis of 250 creates, as examples/bench's mem workload) and
// reports the process's RSS and Go heap in use as they are, then the live
// heap after a forced GC. The RSS is the whole test process's: run it alone,
// once:
//
//	go test -run '^$' -bench BenchmarkMemory100k -benchtime 1x ./coord
func BenchmarkMemory100k(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			for b.Loop() {
				benchMemory(b, nodes, 100_000)
			}
		})
	}
}

func benchMemory(b *testing.B, nodes, keys int) {
	cluster := testcluster.Join(b, testcluster.Configs(b, "mem", nodes, true)...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const par, batch = 8, 250
	sessions := make([]*coord.Session, par)
	for i := range sessions {
		s, err := cluster[i%nodes].Session(ctx, coord.SessionOptions{Timeout: 10 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = s.Close(context.Background()) }()
		sessions[i] = s
	}
	if _, err := sessions[0].Create(ctx, "/mem", nil, coord.Persistent); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 64)
	var next atomic.Int64
	errs := make([]error, par)
	var wg sync.WaitGroup
	for w := range par {
		wg.Go(func() {
			for {
				lo := int(next.Add(batch)) - batch
				if lo >= keys {
					return
				}
				ops := make([]coord.Op, 0, batch)
				for k := lo; k < min(lo+batch, keys); k++ {
					ops = append(ops, coord.CreateOp(fmt.Sprintf("/mem/k%06d", k), value, coord.Persistent))
				}
				if _, err := sessions[w].Multi(ctx, ops...); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	for _, n := range cluster {
		s, err := n.Session(ctx, coord.SessionOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		st, _, err := s.Exists(ctx, "/mem")
		if err != nil {
			b.Fatal(err)
		}
		if int(st.NumChildren) != keys {
			b.Fatalf("node %d holds %d children of /mem, want %d", n.ID(), st.NumChildren, keys)
		}
		_ = s.Close(ctx)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(rssBytes(b))/(1<<20), "rss-MiB")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-inuse-MiB")
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "live-heap-MiB")
	if *memHeapProfile != "" {
		writeHeapProfile(b, fmt.Sprintf("%s-%d", *memHeapProfile, nodes))
	}
}

// rssBytes reads the process's resident set size from /proc (0 where there
// is none).
func rssBytes(b *testing.B) int64 {
	rss, _, err := procMemory(os.Getpid())
	if err != nil {
		b.Logf("RSS: %v", err)
	}
	return int64(rss)
}

// writeHeapProfile writes the heap profile as of the last GC to path.
func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}
