package wal

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var crashIters = flag.Int("wal.crashiters", 40, "SIGKILL rounds in TestKill9")

// killData is the deterministic payload of zxid z, so the parent can tell a
// real record from one invented by recovery.
func killData(z uint64) []byte {
	return bytes.Repeat([]byte(strconv.FormatUint(z, 36)), int(z%23))
}

// TestKill9 runs a writer in a child process (this test binary), kills it
// with SIGKILL at random moments and reopens the log each time: every zxid the
// child reported as synced must be present, the log must be exactly the
// child's sequence 1..n (nothing invented, nothing reordered), and the child
// resumes after the recovered tail. Rounds: -wal.crashiters.
func TestKill9(t *testing.T) {
	if dir := os.Getenv("WAL_KILL9_DIR"); dir != "" {
		kill9Child(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	var acked uint64
	for round := range *crashIters {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$")
		cmd.Env = append(os.Environ(), "WAL_KILL9_DIR="+dir)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		lines := make(chan uint64, 1024)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if z, ok := strings.CutPrefix(sc.Text(), "synced "); ok {
					n, err := strconv.ParseUint(z, 10, 64)
					if err == nil {
						lines <- n
					}
				}
			}
		}()
		// Wait for the child to be writing, then kill it at a random moment.
		select {
		case z, ok := <-lines:
			require.True(t, ok, "round %d: child exited before writing", round)
			acked = max(acked, z)
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: child wrote nothing", round)
		}
		time.Sleep(time.Duration(rng.IntN(40_000)) * time.Microsecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		for z := range lines {
			acked = max(acked, z)
		}
		_ = cmd.Wait()

		l, err := Open(dir, Options{SegmentSize: 64 << 10})
		require.NoError(t, err, "round %d", round)
		var n uint64
		require.NoError(t, l.Iterate(0, func(r Record) error {
			n++
			if r.Zxid != n || !bytes.Equal(r.Data, killData(n)) {
				return fmt.Errorf("record %d is %#x %q, want %#x", n, r.Zxid, r.Data, n)
			}
			return nil
		}), "round %d", round)
		require.GreaterOrEqual(t, n, acked, "round %d: lost a synced record", round)
		require.NoError(t, l.Close())
		t.Logf("round %d: %d records recovered, %d acknowledged, %d segments", round, n, acked, len(segFiles(t, dir)))
	}
}

// kill9Child appends batches forever, reporting each synced zxid on stdout.
func kill9Child(dir string) {
	l, err := Open(dir, Options{SegmentSize: 64 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	z := l.LastZxid()
	rng := rand.New(rand.NewPCG(z, 2))
	for {
		batch := make([]Record, 1+rng.IntN(8))
		for i := range batch {
			z++
			batch[i] = Record{Zxid: z, Data: killData(z)}
		}
		if err := l.Append(batch...); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if err := l.Sync(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Printf("synced %d\n", z)
	}
}
