package sim

import "testing"

// TestSimLock runs seeded fault schedules with clients contending for the
// lock recipe's lock and acting on a fenced resource while they hold it,
// and checks increasing tokens, mutual exclusion and the resource, on top
// of the session checks. -seed N replays one seed; -sim.seeds=N soaks.
func TestSimLock(t *testing.T) {
	runSessionTest(t, "TestSimLock", func(seed uint64) SessionConfig {
		return SessionConfig{Seed: seed, EphClients: 1, LockClients: 4, Duration: *durFlag,
			CoordAsIs: *coordAsIsFlag, LongMaintainStalls: *longStallsFlag, ForgetRetried: *forgetFlag}
	})
}

// TestCheckerCatchesHolderIgnoringSuspended: a holder that keeps acting
// until Lost (not Suspended) overlaps the next holder's work.
func TestCheckerCatchesHolderIgnoringSuspended(t *testing.T) {
	requireSessionCaught(t, "", func(c *SessionConfig) {
		c.EphClients, c.LockClients, c.HolderIgnoresSuspended = 1, 4, true
	})
}
