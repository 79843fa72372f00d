package coord_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/internal/testcluster"
)

// BenchmarkWrite measures the write path as a caller sees it: 1, 16 and
// 128 concurrent writers, each its own session spread round-robin over a
// 3-node cluster replicating over TCP on 127.0.0.1, every write fsynced
// (DataDirs in t.TempDir) before it is acknowledged. Each writer Sets a
// 64-byte value on its own znode, as examples/bench's write workload.
// Besides ns/op (wall time over all writers) it reports writes/s and the
// p99 latency of one write. Compare runs with benchstat:
//
//	go test -run '^$' -bench BenchmarkWrite -benchmem -count 6 ./coord
func BenchmarkWrite(b *testing.B) {
	for _, writers := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) { benchWrite(b, writers) })
	}
}

func benchWrite(b *testing.B, writers int) {
	nodes := testcluster.Join(b, testcluster.Configs(b, "bench", 3, true)...)
	testcluster.Leader(b, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	value := make([]byte, 64)
	sessions := make([]*coord.Session, writers)
	paths := make([]string, writers)
	for i := range writers {
		s, err := nodes[i%len(nodes)].Session(ctx, coord.SessionOptions{Timeout: 10 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close(context.Background()) })
		sessions[i], paths[i] = s, fmt.Sprintf("/w%04d", i)
		if _, err := s.Create(ctx, paths[i], value, coord.Persistent); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([][]time.Duration, writers)
	var left atomic.Int64
	var failed atomic.Pointer[error]
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				t0 := time.Now()
				if _, err := sessions[i].Set(ctx, paths[i], value, coord.AnyVersion); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	}
}
