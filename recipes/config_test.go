package recipes_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

type settings struct {
	N     int    `json:"n"`
	Owner string `json:"owner"`
}

// observer follows a Config and checks that its value never goes back: the
// znode's Mzxid and the value's N strictly increase.
type observer struct {
	cfg  *recipes.Config[settings]
	last atomic.Int64 // highest N seen
	done chan struct{}
}

func observe(t *testing.T, cfg *recipes.Config[settings]) *observer {
	o := &observer{cfg: cfg, done: make(chan struct{})}
	ch, stop := cfg.Subscribe()
	t.Cleanup(stop)
	go func() {
		defer close(o.done)
		var mz int64
		n := -1
		for v := range ch {
			if !v.Exists {
				continue
			}
			if v.Err != nil {
				t.Errorf("decode: %v", v.Err)
				continue
			}
			if v.Stat.Mzxid <= mz || v.V.N <= n {
				t.Errorf("config went back: mzxid %d after %d, n %d after %d", v.Stat.Mzxid, mz, v.V.N, n)
			}
			mz, n = v.Stat.Mzxid, v.V.N
			o.last.Store(int64(n))
		}
	}()
	return o
}

// increments has workers Update the config's N, each k times, and returns
// how many updates succeeded.
func increments(t *testing.T, nodes []*coord.Node, path string, workersN, k int, afterFirst func()) int64 {
	var ok atomic.Int64
	var once sync.Once
	ctx := testCtx(t, 60*time.Second)
	workers(t, nodes, workersN, func(i int, s *coord.Session) {
		cfg, err := recipes.NewConfig(ctx, recipes.FixedSession(s), path, recipes.ConfigOptions[settings]{})
		if err != nil {
			t.Error(err)
			return
		}
		defer cfg.Close()
		for range k {
			_, _, err := cfg.Update(ctx, func(old settings) (settings, error) {
				return settings{N: old.N + 1, Owner: fmt.Sprint("worker-", i)}, nil
			})
			if err != nil {
				t.Errorf("worker %d: %v", i, err)
				return
			}
			ok.Add(1)
			if afterFirst != nil {
				once.Do(afterFirst)
			}
		}
	})
	return ok.Load()
}

// TestConfigNeverGoesBack: 16 workers over 3 nodes update one config while
// a watcher on every node checks that the value it sees only moves
// forward; every update lands (the final N is their count), every watcher
// ends on it. Then the leader is crash-stopped mid-run: the survivors'
// watchers keep following and never go back.
func TestConfigNeverGoesBack(t *testing.T) {
	nodes := cluster(t, 3)
	ctx := testCtx(t, 60*time.Second)
	const path = "/app/settings"
	var obs []*observer
	for _, n := range nodes {
		cfg, err := recipes.NewConfig(ctx, recipes.NodeSessions(n), path, recipes.ConfigOptions[settings]{})
		require.NoError(t, err)
		t.Cleanup(func() { cfg.Close() })
		require.False(t, cfg.Get().Exists)
		obs = append(obs, observe(t, cfg))
	}
	total := increments(t, nodes, path, 16, 8, nil)
	require.Equal(t, int64(16*8), total)
	for _, o := range obs {
		require.Eventually(t, func() bool { return o.last.Load() == total }, 10*time.Second, 5*time.Millisecond)
		v := o.cfg.Get()
		require.True(t, v.Exists)
		require.Equal(t, int(total), v.V.N)
	}

	// Fail-over: updaters on the survivors, the leader dies after the first update.
	old, alive := splitLeader(t, nodes)
	more := increments(t, alive, path, 16, 4, old.Shutdown)
	require.Equal(t, int64(16*4), more)
	for i, n := range nodes {
		if n == old {
			continue
		}
		require.Eventually(t, func() bool { return obs[i].last.Load() == total+more }, 10*time.Second, 5*time.Millisecond)
	}
}

// TestConfigResumesWithANewSession: when the Config's session ends, it
// takes another from its factory and keeps following.
func TestConfigResumesWithANewSession(t *testing.T) {
	nodes := cluster(t, 1)
	ctx := testCtx(t, 20*time.Second)
	var mu sync.Mutex
	var given []*coord.Session
	factory := func(ctx context.Context) (recipes.Session, error) {
		mu.Lock()
		defer mu.Unlock()
		if len(given) > 0 && !closed(given[len(given)-1]) {
			return given[len(given)-1], nil
		}
		s, err := nodes[0].Session(ctx, coord.SessionOptions{})
		if err != nil {
			return nil, err
		}
		given = append(given, s)
		return s, nil
	}
	cfg, err := recipes.NewConfig(ctx, factory, "/c", recipes.ConfigOptions[settings]{})
	require.NoError(t, err)
	defer cfg.Close()
	ch, stop := cfg.Subscribe()
	defer stop()
	require.False(t, (<-ch).Exists)
	_, _, err = cfg.Update(ctx, func(settings) (settings, error) { return settings{N: 1}, nil })
	require.NoError(t, err)
	require.Equal(t, 1, (<-ch).V.N)

	mu.Lock()
	first := given[0]
	mu.Unlock()
	require.NoError(t, first.Close(ctx))
	_, err = nodes[0].Set(ctx, "/c", []byte(`{"n":2}`), coord.AnyVersion)
	require.NoError(t, err)
	require.Equal(t, 2, (<-ch).V.N, "followed through a new session")
	mu.Lock()
	require.Len(t, given, 2)
	mu.Unlock()
	require.NoError(t, cfg.Err())
}

// closed reports whether s refuses requests.
func closed(s *coord.Session) bool {
	_, _, err := s.Exists(context.Background(), "/")
	return err != nil
}

func TestConfigUpdateErrorsAndCodec(t *testing.T) {
	nodes := cluster(t, 1)
	ctx := testCtx(t, 20*time.Second)
	s := workSession(t, nodes[0])
	cfg, err := recipes.NewConfig(ctx, recipes.FixedSession(s), "/deep/er/conf", recipes.ConfigOptions[int64]{Codec: recipes.Int64Codec{}})
	require.NoError(t, err)
	defer cfg.Close()

	// fn's error aborts; nothing is written.
	boom := errors.New("boom")
	_, _, err = cfg.Update(ctx, func(int64) (int64, error) { return 0, boom })
	require.ErrorIs(t, err, boom)
	_, ok, err := s.Exists(ctx, "/deep/er/conf")
	require.NoError(t, err)
	require.False(t, ok)

	// The first update creates the node and its parents.
	v, st, err := cfg.Update(ctx, func(old int64) (int64, error) { return old + 41, nil })
	require.NoError(t, err)
	require.Equal(t, int64(41), v)
	require.Equal(t, int32(0), st.Version)
	data, _, err := s.Get(ctx, "/deep/er/conf")
	require.NoError(t, err)
	require.Equal(t, "41", string(data))
	require.Eventually(t, func() bool { return cfg.Get().V == 41 }, 5*time.Second, time.Millisecond)

	// Bad bytes are a decode error in the view and in Update, never a panic.
	_, err = s.Set(ctx, "/deep/er/conf", []byte("not a number"), coord.AnyVersion)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return errors.Is(cfg.Get().Err, recipes.ErrDecode) }, 5*time.Second, time.Millisecond)
	_, _, err = cfg.Update(ctx, func(old int64) (int64, error) { return old + 1, nil })
	require.ErrorIs(t, err, recipes.ErrDecode)

	// Deletion is shown.
	require.NoError(t, s.Delete(ctx, "/deep/er/conf", coord.AnyVersion))
	require.Eventually(t, func() bool { return !cfg.Get().Exists }, 5*time.Second, time.Millisecond)

	// Cancelled: nothing written, nothing watched beyond the Config's own.
	before := watches(nodes)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, _, err = cfg.Update(cctx, func(old int64) (int64, error) { return 7, nil })
	require.ErrorIs(t, err, context.Canceled)
	_, err = recipes.NewConfig(cctx, recipes.FixedSession(s), "/other", recipes.ConfigOptions[int64]{Codec: recipes.Int64Codec{}})
	require.ErrorIs(t, err, context.Canceled)
	requireWatchesBack(t, nodes, before)
	_, ok, err = s.Exists(ctx, "/deep/er/conf")
	require.NoError(t, err)
	assert.False(t, ok)

	// Close removes the Config's watch.
	require.NoError(t, cfg.Close())
	requireWatchesBack(t, nodes, []int{before[0] - 1})
	require.ErrorIs(t, cfg.Err(), recipes.ErrCacheClosed)
}
