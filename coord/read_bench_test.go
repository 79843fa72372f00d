package coord_test

import (
	"context"
	"testing"
	"time"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/internal/testcluster"
)

// BenchmarkLocalGet measures a local read through a Session (a 64-byte
// znode on a one-node cluster), from GOMAXPROCS goroutines at once:
//
//	go test -run '^$' -bench BenchmarkLocalGet -benchmem -count 6 ./coord
func BenchmarkLocalGet(b *testing.B) {
	nodes := testcluster.Join(b, testcluster.Configs(b, "bench", 1, false)...)
	testcluster.Leader(b, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := nodes[0].Session(ctx, coord.SessionOptions{Timeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close(context.Background()) })
	if _, err := s.Create(ctx, "/r", make([]byte, 64), coord.Persistent); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := s.Get(ctx, "/r"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
