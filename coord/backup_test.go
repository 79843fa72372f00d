package coord_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/internal/testcluster"
	"github.com/coord-dev/coord/zab"
)

var backupSeed = flag.Uint64("backup.seed", 0, "seed of TestBackupUnderLoadRestoresExactly (0: from the clock)")

// write is one acknowledged write of the load: path got data at zxid, as
// its version-th change.
type write struct {
	path    string
	data    string
	zxid    int64
	version int32
}

// znode is what a cluster holds at one path.
type znode struct {
	data    string
	mzxid   int64
	version int32
}

// dump walks the whole tree of n below root.
func dump(t *testing.T, ctx context.Context, n *coord.Node, root string) map[string]znode {
	t.Helper()
	out := map[string]znode{}
	var walk func(p string)
	walk = func(p string) {
		data, st, err := n.Get(ctx, p)
		require.NoError(t, err, p)
		out[p] = znode{data: string(data), mzxid: st.Mzxid, version: st.Version}
		kids, _, err := n.Children(ctx, p)
		require.NoError(t, err, p)
		for _, k := range kids {
			if p == "/" {
				walk("/" + k)
			} else {
				walk(p + "/" + k)
			}
		}
	}
	walk(root)
	return out
}

// TestBackupUnderLoadRestoresExactly takes a backup on a follower while
// four writers create and update znodes through every node, restores it
// into a new 3-node cluster with other ids and another name, and checks
// that every znode of the new cluster, on every node, is exactly what the
// acknowledged writes up to the backup's zxid made it, and nothing more.
func TestBackupUnderLoadRestoresExactly(t *testing.T) {
	seed := *backupSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -backup.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 12))

	src := testcluster.Start(t, "backup-src", 3)
	l := testcluster.Leader(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := src[0].Create(ctx, "/k", nil, coord.Persistent)
	require.NoError(t, err)

	const writers = 4
	var (
		mu      sync.Mutex
		log     []write
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		counts  [writers]int
		werrs   = make([]error, writers)
		seeds   = make([]uint64, writers)
		backupN = make(chan struct{}) // closed once 100 writes are acknowledged
	)
	for w := range writers {
		seeds[w] = rng.Uint64()
	}
	var closeOnce sync.Once
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seeds[w], 0))
			n := src[w%3]
			var mine []string
			versions := map[string]int32{}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var rec write
				if len(mine) == 0 || r.IntN(3) == 0 {
					p := fmt.Sprintf("/k/w%d-%04d", w, i)
					data := fmt.Sprintf("c%d-%d", w, i)
					if _, err := n.Create(ctx, p, []byte(data), coord.Persistent); err != nil {
						werrs[w] = err
						return
					}
					// Only this writer touches p: its stat is this create's.
					st, ok, err := n.Exists(ctx, p)
					if err != nil || !ok {
						werrs[w] = fmt.Errorf("exists %s: %v %v", p, ok, err)
						return
					}
					mine = append(mine, p)
					rec = write{path: p, data: data, zxid: st.Mzxid}
				} else {
					p := mine[r.IntN(len(mine))]
					data := fmt.Sprintf("s%d-%d", w, i)
					st, err := n.Set(ctx, p, []byte(data), versions[p])
					if err != nil {
						werrs[w] = err
						return
					}
					versions[p] = st.Version
					rec = write{path: p, data: data, zxid: st.Mzxid, version: st.Version}
				}
				mu.Lock()
				log = append(log, rec)
				if len(log) == 100 {
					closeOnce.Do(func() { close(backupN) })
				}
				mu.Unlock()
				counts[w]++
			}
		}()
	}
	select {
	case <-backupN:
	case <-ctx.Done():
		t.Fatal("the load made no progress")
	}
	var buf bytes.Buffer
	taker := src[(l+1)%3]
	info, err := taker.Backup(ctx, &buf)
	require.NoError(t, err)
	mu.Lock()
	atBackup := len(log)
	mu.Unlock()
	// Let the load run on past the backup, then stop it.
	for {
		mu.Lock()
		n := len(log)
		mu.Unlock()
		if n >= atBackup+100 || ctx.Err() != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	require.NoError(t, errors.Join(werrs...))
	t.Logf("backup at zxid %#x of %d bytes; %d writes (%v per writer)", info.Zxid, info.Size, len(log), counts)

	assert.Equal(t, []uint64{1, 2, 3}, info.Voters)
	assert.Equal(t, "backup-src", info.Cluster)
	assert.Equal(t, taker.ID(), info.NodeID)
	assert.Equal(t, int64(buf.Len()), info.Size)
	var before, after int
	for _, w := range log {
		if w.zxid <= info.Zxid {
			before++
		} else {
			after++
		}
	}
	require.Positive(t, before, "writes before the backup")
	require.Positive(t, after, "writes after the backup: it was taken under load")

	// What the acknowledged writes made of the tree up to the backup.
	want := map[string]znode{}
	slices.SortFunc(log, func(a, b write) int { return int(a.zxid - b.zxid) })
	for _, w := range log {
		if w.zxid <= info.Zxid {
			want[w.path] = znode{data: w.data, mzxid: w.zxid, version: w.version}
		}
	}

	checked, err := coord.ReadBackup(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	assert.Equal(t, info.Zxid, checked.Zxid)
	assert.Equal(t, info.SHA256, checked.SHA256)
	assert.Equal(t, info.Voters, checked.Voters)
	assert.GreaterOrEqual(t, checked.Znodes, len(want)+2)

	// A new cluster: ids 11..13, another name, each voter restored.
	cfgs := testcluster.Configs(t, "backup-restored", 3, true)
	for i := range cfgs {
		cfgs[i].NodeID = uint64(11 + i)
		cfgs[i].Voters = []uint64{11, 12, 13}
		got, err := coord.Restore(bytes.NewReader(buf.Bytes()), coord.RestoreOptions{
			DataDir: cfgs[i].DataDir, NodeID: cfgs[i].NodeID, Cluster: cfgs[i].Cluster, Voters: cfgs[i].Voters})
		require.NoError(t, err)
		require.Equal(t, info.Zxid, got.Zxid)
	}
	dst := testcluster.Join(t, cfgs...)
	for _, n := range dst {
		require.NoError(t, n.Sync(ctx))
		got := dump(t, ctx, n, "/k")
		delete(got, "/k")
		require.Equal(t, len(want), len(got), "node %d holds %d znodes under /k, want %d", n.ID(), len(got), len(want))
		for p, w := range want {
			require.Equal(t, w, got[p], "node %d, %s", n.ID(), p)
		}
		assert.Equal(t, []uint64{11, 12, 13}, n.Voters())
	}
	// The new cluster goes on from after the backup.
	_, err = dst[0].Create(ctx, "/after", []byte("x"), coord.Persistent)
	require.NoError(t, err)
	st, ok, err := dst[0].Exists(ctx, "/after")
	require.NoError(t, err)
	require.True(t, ok)
	require.Greater(t, st.Czxid, info.Zxid)
	require.Greater(t, zab.Zxid(st.Czxid).Epoch(), zab.Zxid(info.Zxid).Epoch())

	// A restored node restarts from its own data directory like any other.
	require.NoError(t, dst[1].Close(ctx))
	again := testcluster.Join(t, cfgs[1])[0]
	require.NoError(t, again.Sync(ctx))
	got := dump(t, ctx, again, "/k")
	delete(got, "/k")
	require.Len(t, got, len(want))
	_, _, err = again.Get(ctx, "/after")
	require.NoError(t, err)
}

// TestRestoreRefuses: Restore writes nothing for bytes that are not an
// intact backup, and never into a directory that holds data.
func TestRestoreRefuses(t *testing.T) {
	nodes := testcluster.Start(t, "backup-refuse", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := nodes[0].Create(ctx, "/x", []byte("y"), coord.Persistent)
	require.NoError(t, err)
	var buf bytes.Buffer
	_, err = nodes[0].Backup(ctx, &buf)
	require.NoError(t, err)
	good := buf.Bytes()

	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x40
	cases := map[string][]byte{
		"empty":       nil,
		"truncated":   good[:len(good)-1],
		"no sum":      good[:len(good)-37],
		"flipped":     flipped,
		"trailing":    append(bytes.Clone(good), 0),
		"bad magic":   append([]byte("COORDBAK"), good[8:]...),
		"header only": good[:12],
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			_, err := coord.Restore(bytes.NewReader(b), coord.RestoreOptions{DataDir: dir, NodeID: 1})
			require.ErrorIs(t, err, coord.ErrBadBackup)
			_, err = os.Stat(dir)
			require.ErrorIs(t, err, os.ErrNotExist, "nothing written")
			_, err = coord.ReadBackup(bytes.NewReader(b))
			require.ErrorIs(t, err, coord.ErrBadBackup)
		})
	}

	dir := t.TempDir()
	_, err = coord.Restore(bytes.NewReader(good), coord.RestoreOptions{DataDir: dir, NodeID: 1})
	require.NoError(t, err)
	_, err = coord.Restore(bytes.NewReader(good), coord.RestoreOptions{DataDir: dir, NodeID: 1})
	require.ErrorIs(t, err, zab.ErrDataDir, "a second restore into the same directory")
	_, err = coord.Restore(bytes.NewReader(good), coord.RestoreOptions{NodeID: 1})
	require.ErrorIs(t, err, coord.ErrInvalidConfig)

	// A cancelled backup fails and leaves no valid backup behind.
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	var partial bytes.Buffer
	_, err = nodes[0].Backup(cctx, &partial)
	require.ErrorIs(t, err, context.Canceled)
	_, err = coord.ReadBackup(bytes.NewReader(partial.Bytes()))
	require.ErrorIs(t, err, coord.ErrBadBackup)
}
