package wal_test

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/coord-dev/coord/zab/wal"
)

// The driver shape: append what a step produced, fsync once, then ACK.
// Recovery is newest valid snapshot + replay of the log after it.
func Example() {
	dir, err := os.MkdirTemp("", "wal-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	zxid := func(epoch, counter uint32) uint64 { return uint64(epoch)<<32 | uint64(counter) }
	if err := wal.WriteEpoch(dir, wal.AcceptedEpochFile, 1); err != nil {
		panic(err)
	}
	l, err := wal.Open(dir, wal.Options{})
	if err != nil {
		panic(err)
	}
	for c := uint32(1); c <= 4; c++ {
		if err := l.Append(wal.Record{Zxid: zxid(1, c), Data: fmt.Appendf(nil, "set x=%d", c)}); err != nil {
			panic(err)
		}
	}
	if err := l.Sync(); err != nil { // one fsync for the four records
		panic(err)
	}
	snaps, err := wal.OpenSnapshotStore(dir, nil)
	if err != nil {
		panic(err)
	}
	if _, err := snaps.WriteFrom(zxid(1, 2), bytes.NewReader([]byte("x=2"))); err != nil {
		panic(err)
	}
	// A new leader's TRUNC: drop the uncommitted (1,4).
	if err := l.TruncateAfter(zxid(1, 3)); err != nil {
		panic(err)
	}
	l.Close()

	// Restart.
	l, err = wal.Open(dir, wal.Options{})
	if err != nil {
		panic(err)
	}
	defer l.Close()
	epoch, _ := wal.ReadEpoch(dir, wal.AcceptedEpochFile)
	sn, err := snaps.OpenNewest()
	if err != nil {
		panic(err)
	}
	state, _ := io.ReadAll(sn)
	sn.Close()
	fmt.Printf("acceptedEpoch %d, snapshot at %#x: %s\n", epoch, sn.Info.Zxid, state)
	_ = l.Iterate(sn.Info.Zxid+1, func(r wal.Record) error {
		fmt.Printf("replay %#x: %s\n", r.Zxid, r.Data)
		return nil
	})
	// Output:
	// acceptedEpoch 1, snapshot at 0x100000002: x=2
	// replay 0x100000003: set x=3
}
