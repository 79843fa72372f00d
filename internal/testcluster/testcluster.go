// Package testcluster starts in-process coord clusters on 127.0.0.1 for
// the tests of packages built on the public coord API (coord/admin,
// coord/admin/prom, examples/coordctl, coord's own external tests). It is
// imported by tests only.
package testcluster

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/internal/loopback"
)

// JoinTimeout bounds each Join of Start and Join.
const JoinTimeout = 30 * time.Second

// Configs returns LocalConfigs for n voters (ids 1..n) of cluster name on
// free loopback addresses, seeding each other. With dataDirs, each has its
// own t.TempDir as DataDir.
func Configs(t testing.TB, name string, n int, dataDirs bool) []coord.Config {
	t.Helper()
	var seeds []string
	var voters []uint64
	for i := 1; i <= n; i++ {
		addr, err := loopback.FreeAddr()
		if err != nil {
			t.Fatalf("testcluster: %v", err)
		}
		seeds = append(seeds, addr)
		voters = append(voters, uint64(i))
	}
	cfgs := make([]coord.Config, n)
	for i := range n {
		c := coord.LocalConfig(uint64(i + 1))
		c.Cluster = name
		c.GossipBindAddr, c.Seeds, c.Voters = seeds[i], seeds, voters
		if dataDirs {
			c.DataDir = t.TempDir()
		}
		cfgs[i] = c
	}
	return cfgs
}

// Start joins n voters of cluster name (see Configs, in memory) and closes
// them when the test ends.
func Start(t testing.TB, name string, n int) []*coord.Node {
	t.Helper()
	return Join(t, Configs(t, name, n, false)...)
}

// Join joins a node for each config, concurrently, and closes them when the
// test ends. It fails the test unless every Join succeeds.
func Join(t testing.TB, cfgs ...coord.Config) []*coord.Node {
	t.Helper()
	nodes := make([]*coord.Node, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), JoinTimeout)
			defer cancel()
			nodes[i], errs[i] = coord.JoinContext(ctx, cfg)
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, n := range nodes {
			if n != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_ = n.Close(ctx)
				cancel()
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("testcluster: join: %v", err)
	}
	return nodes
}

// Observer returns a LocalConfig for an observer with id that joins the
// cluster of cfg (one of its members' configs).
func Observer(t testing.TB, cfg coord.Config, id uint64) coord.Config {
	t.Helper()
	addr, err := loopback.FreeAddr()
	if err != nil {
		t.Fatalf("testcluster: %v", err)
	}
	c := coord.LocalConfig(id)
	c.Cluster, c.Seeds, c.Voters, c.SecretKey = cfg.Cluster, cfg.Seeds, cfg.Voters, cfg.SecretKey
	c.GossipBindAddr, c.Role = addr, coord.RoleObserver
	return c
}

// Leader waits (up to 10 s) for one of nodes to lead and serve, and
// returns its index.
func Leader(t testing.TB, nodes []*coord.Node) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for i, n := range nodes {
			if n == nil {
				continue
			}
			if st := n.Stats(); st.Role == "LEADING" && st.Serving {
				return i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("testcluster: no leader after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
