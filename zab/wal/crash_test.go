package wal

import (
	"bytes"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRandomCuts models a process crash: the last segment keeps a random
// prefix of the bytes written after the last fsync, zeros after it (earlier
// segments were fsynced when the next one was created). Recovery must return
// every synced record and exactly the appended records that lie wholly before
// the cut, or whose bytes after the cut were zeros already (the cut changed
// nothing there). The seed is logged; -wal.cutseed replays a failure.
func TestRandomCuts(t *testing.T) {
	seed := *cutSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay: go test ./zab/wal -run TestRandomCuts -args -wal.cutseed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for iter := range 60 {
		dir := t.TempDir()
		o, _ := testOpts(int64(600 + rng.IntN(3000)))
		l, err := Open(dir, o)
		require.NoError(t, err)
		var all []Record
		synced := 0
		z := uint64(0)
		for range 1 + rng.IntN(60) {
			batch := make([]Record, 1+rng.IntN(5))
			for i := range batch {
				z += 1 + uint64(rng.IntN(3))
				batch[i] = Record{Zxid: z}
				if n := rng.IntN(40); n > 0 { // Iterate returns nil for empty data
					batch[i].Data = make([]byte, n)
					for j := range batch[i].Data {
						batch[i].Data[j] = byte(rng.Uint32())
					}
				}
			}
			require.NoError(t, l.Append(batch...))
			all = append(all, batch...)
			if rng.IntN(3) == 0 {
				require.NoError(t, l.Sync())
				synced = len(all)
			}
		}
		// Records in earlier segments are synced by the roll.
		files := segFiles(t, dir)
		last := files[len(files)-1]
		lastFirst, _ := parseSegName(filepath.Base(last))
		for i, r := range all {
			if r.Zxid < lastFirst {
				synced = max(synced, i+1)
			}
		}
		// Offsets of the records in the last segment and of the synced end.
		offs := frameOffsets(t, last)
		inLast := all[len(all)-len(offs):]
		syncedEnd := int64(segHeaderSize)
		for i, r := range inLast {
			if len(all)-len(offs)+i < synced {
				syncedEnd = offs[i] + frameHeaderSize + int64(len(r.Data))
			}
		}
		dataEnd := offs[len(offs)-1] + frameHeaderSize + int64(len(inLast[len(inLast)-1].Data))
		cut := syncedEnd + rng.Int64N(dataEnd-syncedEnd+1)
		// Simulate the crash on a copy while l is still open: the kill.
		b, err := os.ReadFile(last)
		require.NoError(t, err)
		orig := bytes.Clone(b)
		clear(b[cut:])
		crashed := copyDir(t, dir)
		require.NoError(t, os.WriteFile(filepath.Join(crashed, filepath.Base(last)), b, 0o644))
		require.NoError(t, l.Close())

		want := all[:len(all)-len(offs)]
		for i, r := range inLast {
			end := offs[i] + frameHeaderSize + int64(len(r.Data))
			if end <= cut || allZero(orig[cut:end]) {
				want = append(want, r)
			} else {
				break // the first damaged record ends the log
			}
		}
		if len(want) == 0 {
			want = nil
		}
		l2, err := Open(crashed, o)
		require.NoError(t, err, "iteration %d cut %d", iter, cut)
		got := readAll(t, l2, 0)
		require.GreaterOrEqual(t, len(got), synced, "iteration %d: lost a synced record", iter)
		require.Equal(t, want, got, "iteration %d cut %d", iter, cut)
		require.NoError(t, l2.Close())
	}
}

var cutSeed = flag.Uint64("wal.cutseed", 0, "TestRandomCuts seed (0: from the clock)")

func allZero(b []byte) bool { return bytes.Count(b, []byte{0}) == len(b) }

// TestFailedIsSticky: after a write error the Log refuses further work.
func TestFailedIsSticky(t *testing.T) {
	o, _ := testOpts(4096)
	l := openLog(t, t.TempDir(), o)
	require.NoError(t, l.Commit(recs(1, 1, 2)...))
	l.active.f.Close() // the disk "fails"
	err := l.Append(recs(1, 3, 1)...)
	require.ErrorIs(t, err, ErrFailed)
	assert.ErrorIs(t, l.Sync(), ErrFailed)
	assert.ErrorIs(t, l.Append(recs(1, 4, 1)...), ErrFailed)
	assert.ErrorIs(t, l.TruncateAfter(0), ErrFailed)
}

// TestCloseStopsIteration: Close waits for a running Iterate, which stops
// with ErrClosed at its next record.
func TestCloseStopsIteration(t *testing.T) {
	o, _ := testOpts(4096)
	l, err := Open(t.TempDir(), o)
	require.NoError(t, err)
	require.NoError(t, l.Commit(recs(1, 1, 5)...))
	inFn := make(chan struct{})
	release := make(chan struct{})
	iterErr := make(chan error, 1)
	go func() {
		first := true
		iterErr <- l.Iterate(0, func(Record) error {
			if first {
				first = false
				close(inFn)
				<-release
			}
			return nil
		})
	}()
	<-inFn
	closeErr := make(chan error, 1)
	go func() { closeErr <- l.Close() }()
	require.Eventually(t, l.closed.Load, 5*time.Second, time.Millisecond)
	close(release)
	assert.ErrorIs(t, <-iterErr, ErrClosed)
	assert.NoError(t, <-closeErr)
}
