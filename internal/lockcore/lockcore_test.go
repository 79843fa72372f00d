package lockcore

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
)

// step is one exchange with the core: the answer fed and the action
// wanted back.
type step struct {
	in   Answer
	want Action
}

// firstN is the semaphore's rule for n leases.
func firstN(n int) Rule {
	return func(_ []Contender, me int) Decision {
		if me < n {
			return Decision{Held: true}
		}
		return Decision{Children: true}
	}
}

func TestCoreScripts(t *testing.T) {
	const me = "/l/lock-0000000002"
	lock := Config{Dir: "/l", Prefix: "lock-", Prefixes: []string{"lock-"}, Rule: Mutex}
	with := func(c Config, f func(*Config)) Config { f(&c); return c }
	errQuorum := errors.New("no quorum")
	// behind: Wait created me behind lock-1 and blocks on its watch.
	behind := func() []step {
		return []step{
			{Answer{}, Action{Kind: Connect}},
			{Answer{}, Action{Kind: Create, Path: "/l/lock-"}},
			{Answer{Path: me}, Action{Kind: List, Path: "/l"}},
			{Answer{Names: []string{"lock-0000000001", "lock-0000000002"}},
				Action{Kind: ExistsW, Path: "/l/lock-0000000001"}},
			{Answer{Exists: true}, Action{Kind: Block}},
		}
	}
	tests := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{"lowest holds with its czxid", lock, []step{
			{Answer{}, Action{Kind: Connect}},
			{Answer{}, Action{Kind: Create, Path: "/l/lock-"}},
			{Answer{Path: me}, Action{Kind: List, Path: "/l"}},
			{Answer{Names: []string{"lock-0000000002", "other"}}, Action{Kind: Exists, Path: me}},
			{Answer{Exists: true, Czxid: 42}, Action{Kind: Held, Path: me, Token: 42}},
			{Answer{}, Action{Kind: Held, Path: me, Token: 42}},
		}},
		{"waits on its predecessor, then holds", lock, []step{
			{Answer{}, Action{Kind: Connect}},
			{Answer{}, Action{Kind: Create, Path: "/l/lock-"}},
			{Answer{Path: me}, Action{Kind: List, Path: "/l"}},
			{Answer{Names: []string{"lock-0000000002", "lock-0000000000", "lock-0000000001"}},
				Action{Kind: ExistsW, Path: "/l/lock-0000000001"}},
			{Answer{Exists: true}, Action{Kind: Block}},
			{Answer{Woke: Fired}, Action{Kind: List, Path: "/l"}},
			{Answer{Names: []string{"lock-0000000002", "lock-0000000000"}},
				Action{Kind: ExistsW, Path: "/l/lock-0000000000"}},
			{Answer{}, Action{Unwatch: true, Kind: List, Path: "/l"}}, // it left between the reads
			{Answer{Names: []string{"lock-0000000002"}}, Action{Kind: Exists, Path: me}},
			{Answer{Exists: true, Czxid: 7}, Action{Kind: Held, Path: me, Token: 7}},
		}},
		{"a suspension while waiting is waited out", lock, append(behind(), []step{
			{Answer{Woke: Broken, Broken: true}, Action{Unwatch: true, Kind: Connect}},
			{Answer{}, Action{Kind: List, Path: "/l"}},
			{Answer{Names: []string{"lock-0000000002"}}, Action{Kind: Exists, Path: me}},
			// Suspended during the check: not held on that period.
			{Answer{Exists: true, Czxid: 9, Broken: true}, Action{Kind: Connect}},
			{Answer{Err: coord.ErrSessionExpired}, Action{Kind: Delete, Path: me}},
			{Answer{}, Action{Kind: Failed, Err: coord.ErrSessionExpired}},
		}...)},
		{"missing directory is made of containers", with(lock, func(c *Config) { c.Dir = "/a/b" }), []step{
			{Answer{}, Action{Kind: Connect}},
			{Answer{}, Action{Kind: Create, Path: "/a/b/lock-"}},
			{Answer{Err: coord.ErrNoNode}, Action{Kind: CreateDir, Path: "/a"}},
			{Answer{Err: coord.ErrNodeExists}, Action{Kind: CreateDir, Path: "/a/b"}},
			{Answer{}, Action{Kind: Create, Path: "/a/b/lock-"}},
			{Answer{Err: errQuorum}, Action{Kind: Failed, Err: errQuorum}},
		}},
		{"cancelled while waiting leaves", lock, append(behind(), []step{
			{Answer{Woke: Cancelled, Err: context.Canceled}, Action{Unwatch: true, Kind: Delete, Path: me}},
			{Answer{}, Action{Kind: Failed, Err: context.Canceled}},
		}...)},
		{"created after the caller gave up leaves", lock, []step{
			{Answer{}, Action{Kind: Connect}},
			{Answer{}, Action{Kind: Create, Path: "/l/lock-"}},
			{Answer{Path: me, CtxErr: context.Canceled}, Action{Kind: Delete, Path: me}},
			{Answer{}, Action{Kind: Failed, Err: context.Canceled}},
		}},
		{"try gives up behind another", with(lock, func(c *Config) { c.Mode = Try }), []step{
			{Answer{}, Action{Kind: Create, Path: "/l/lock-"}},
			{Answer{Path: me}, Action{Kind: List, Path: "/l"}},
			{Answer{Names: []string{"lock-0000000001", "lock-0000000002"}}, Action{Kind: Delete, Path: me}},
			{Answer{}, Action{Kind: Failed}},
		}},
		{"semaphore waits on the directory", Config{Dir: "/s", Prefix: "lease-", Prefixes: []string{"lease-"},
			Children: true, Rule: firstN(1)}, []step{
			{Answer{}, Action{Kind: Connect}},
			{Answer{}, Action{Kind: Create, Path: "/s/lease-"}},
			{Answer{Path: "/s/lease-0000000002"}, Action{Kind: List, Path: "/s", Watch: true}},
			{Answer{Names: []string{"lease-0000000001", "lease-0000000002"}}, Action{Kind: Block}},
			{Answer{Woke: Fired}, Action{Kind: List, Path: "/s", Watch: true}},
			{Answer{Names: []string{"lease-0000000002"}},
				Action{Unwatch: true, Kind: Exists, Path: "/s/lease-0000000002"}},
			{Answer{Exists: true, Czxid: 3}, Action{Kind: Held, Path: "/s/lease-0000000002", Token: 3}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(tt.cfg)
			for i, s := range tt.steps {
				got := c.Step(s.in)
				if s.want.Err != nil {
					require.ErrorIs(t, got.Err, s.want.Err, "step %d", i)
					got.Err = s.want.Err
				}
				require.Equal(t, s.want, got, "step %d", i)
			}
		})
	}
}

func TestFixedFailsWhenThePeriodEnds(t *testing.T) {
	c := New(Config{Dir: "/l", Prefix: "lock-", Prefixes: []string{"lock-"}, Rule: Mutex, Mode: Fixed})
	require.Equal(t, Create, c.Step(Answer{}).Kind)
	require.Equal(t, Action{Kind: Delete, Path: "/l/lock-0000000001"},
		c.Step(Answer{Path: "/l/lock-0000000001", Broken: true}))
	a := c.Step(Answer{})
	require.Equal(t, Failed, a.Kind)
	require.ErrorIs(t, a.Err, ErrLeaseLost)

	c = New(Config{Dir: "/l", Prefix: "lock-", Prefixes: []string{"lock-"}, Rule: Mutex, Mode: Fixed})
	a = c.Step(Answer{Broken: true})
	require.Equal(t, Failed, a.Kind, "a period that ended before the start")
	require.ErrorIs(t, a.Err, ErrLeaseLost)
}

func TestAncestors(t *testing.T) {
	require.Equal(t, []string{"/a"}, Ancestors("/a"))
	require.Equal(t, []string{"/a", "/a/b", "/a/b/c"}, Ancestors("/a/b/c"))
}
