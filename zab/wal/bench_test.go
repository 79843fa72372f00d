package wal

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkCommit measures fsynced commits per second with concurrent
// writers, each committing one 100-byte record at a time: the zxid is taken
// and appended under a mutex (as the single-threaded Zab driver orders
// proposals), then the writer waits in Sync. With group commit the waiters
// share fsyncs; without it every record is fsynced on its own.
func BenchmarkCommit(b *testing.B) {
	for _, mode := range []string{"group", "nogroup"} {
		for _, writers := range []int{1, 16, 128} {
			b.Run(fmt.Sprintf("%s/writers=%d", mode, writers), func(b *testing.B) {
				l, err := Open(b.TempDir(), Options{NoGroupCommit: mode == "nogroup"})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				data := make([]byte, 100)
				var mu sync.Mutex
				var zxid uint64
				var left atomic.Int64
				left.Store(int64(b.N))
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for range writers {
					wg.Go(func() {
						for left.Add(-1) >= 0 {
							mu.Lock()
							zxid++
							err := l.Append(Record{Zxid: zxid, Data: data})
							mu.Unlock()
							if err == nil {
								err = l.Sync()
							}
							if err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				el := time.Since(start)
				b.StopTimer()
				st := l.Stats()
				b.ReportMetric(float64(b.N)/el.Seconds(), "commits/s")
				b.ReportMetric(float64(st.Syncs)/float64(b.N), "fsyncs/commit")
			})
		}
	}
}

// BenchmarkAppendSync is the driver shape: one goroutine appends a batch of
// records (everything that arrived since the last fsync) and syncs once.
func BenchmarkAppendSync(b *testing.B) {
	for _, mode := range []string{"group", "nogroup"} {
		for _, batch := range []int{1, 16, 128} {
			b.Run(fmt.Sprintf("%s/batch=%d", mode, batch), func(b *testing.B) {
				benchAppendSync(b, Options{NoGroupCommit: mode == "nogroup"}, batch)
			})
		}
	}
}

func benchAppendSync(b *testing.B, o Options, batch int) {
	l, err := Open(b.TempDir(), o)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	data := make([]byte, 100)
	rs := make([]Record, batch)
	var zxid uint64
	start := time.Now()
	n := 0
	for b.Loop() {
		for i := range rs {
			zxid++
			rs[i] = Record{Zxid: zxid, Data: data}
		}
		if err := l.Append(rs...); err != nil {
			b.Fatal(err)
		}
		if err := l.Sync(); err != nil {
			b.Fatal(err)
		}
		n += batch
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "records/s")
	b.ReportMetric(float64(l.Stats().Syncs)/float64(n), "fsyncs/record")
}

// BenchmarkRecover1M measures Open (full validation) plus a replay of one
// million 32-byte records.
func BenchmarkRecover1M(b *testing.B) {
	const n = 1_000_000
	dir := b.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 32)
	batch := make([]Record, 0, 1000)
	for z := uint64(1); z <= n; z++ {
		batch = append(batch, Record{Zxid: z, Data: data})
		if len(batch) == cap(batch) {
			if err := l.Append(batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	var openT, replayT time.Duration
	runs := 0
	for b.Loop() {
		t0 := time.Now()
		l, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		count := 0
		if err := l.Iterate(0, func(Record) error { count++; return nil }); err != nil {
			b.Fatal(err)
		}
		if count != n {
			b.Fatalf("replayed %d records, want %d", count, n)
		}
		openT += t1.Sub(t0)
		replayT += time.Since(t1)
		runs++
		l.Close()
	}
	b.ReportMetric(float64(openT.Milliseconds())/float64(runs), "open-ms")
	b.ReportMetric(float64(replayT.Milliseconds())/float64(runs), "replay-ms")
}
