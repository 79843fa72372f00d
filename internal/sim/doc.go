// Package sim checks, in zab's deterministic simulator, that the replicated
// znode tree is linearizable under faults (issue 6).
//
// Run drives one seed: a zabtest.Sim ensemble of 3 or 5 voters (and 0 or 1
// observer) where every peer's state machine is a real tree.Tree fed the
// entries zab hands it through coord's own request path, package
// internal/proposal: requests encoded as coord encodes them (tree op,
// proposer, time, unique ReqID, the limit on data), stamped with the
// leader's wall clock by the stamp coord installs as zab's Stamp hook, and
// decoded into the txn each tree applies as coord's state machine decodes
// them. Virtual clients issue creates (plain and sequential), sets, CAS,
// deletes, multis and Sync+get reads against their peer, with call and
// return times in virtual time; a write is retried by coord's own retry
// rule, proposal.Retry (same peer, same ReqID, Since once an outcome is
// unknown, only on the zab verdicts coord retries), and one whose outcome
// is never learnt stays pending. Meanwhile the seed
// drops, duplicates, delays and reorders messages, isolates the leader,
// partitions random halves, builds bridges, cuts links one way, stalls the
// links between a peer and the leader (zabtest.Sim.Stall: they hold what
// is sent, for up to 2,000 units, then deliver it in order, as a TCP
// connection whose packets stop getting through without breaking it does,
// so a learner's forwards reach the leader after it gave up on them and
// its clients retried), and crashes
// and restarts peers (one, the leader, or all) with only their persisted
// state. It also injects driver faults (zabtest.Sim models the driver loop of
// zab.Node): a crash in the middle of persisting a Ready, after which only
// a prefix of its records (snapshot, truncation, entries, acceptedEpoch,
// currentEpoch, in the order the driver writes them) survives and none of
// its messages but the leader's PROPOSALs went out; a failed fsync, after
// which the node stops and restarts later from what was durable; slow
// fsyncs, which hold a peer's messages and applies for several ticks;
// process pauses longer than the timeouts, after which the peer takes in
// the messages that waited for it with its old state (and, like a
// time.Ticker, one tick); clock jumps (a burst of ticks at once, or no
// tick for a while); and wall-clock steps of a peer, ahead by more than
// the tree's dedup window or back, which move the stamps it puts on writes
// as leader (ahead, every replica forgets the results it kept for retries,
// so a retry whose first attempt applied must fail as outcome unknown). Voters are added and removed at random peers (the
// leader included) through zab's replicated reconfiguration. One seed in four starts every peer from a history
// whose epoch ran its zxid counter up to 2^32-1, at an epoch near 2^31-2^20,
// the highest zab adopts from another peer (not nearer 2^32 in any case: the
// tree, like coord's state machine and ZooKeeper, takes zxids as int64, so an
// epoch of 2^31 or more makes them negative and the tree refuses them). Then everything heals and the run checks:
//
//   - the history, with porcupine against a model of the znode subset (an
//     Unknown verdict counts as a failure);
//   - every peer's tree digest after every zxid, and after heal equal trees
//     and identical committed logs on every peer;
//   - that no acknowledged write is missing from the final history;
//   - that no copy of a write is applied after the zxid whose result its
//     call returned, not even one the tree recognises as a duplicate:
//     coord forgets a write's result once its only attempt returned
//     (proposal.Finished) and a retried write's after tree.DedupWindow, so
//     zab must never commit such a late copy;
//   - read-your-writes of plain local gets;
//   - zabtest.Sim's own invariants (one established leader per epoch, Sync
//     covering every earlier applied write, no divergent apply).
//
// Replay a failing seed with
//
//	go test ./internal/sim -run 'TestLinearizable$' -seed N -v
//
// which prints the porcupine visualisation file, an explanation (longest
// linearizable prefix and the operation that cannot follow it) and the
// run's schedule. It also shrinks the failure: it re-runs the seed with
// one fault class after another left out (net, partition, crash, disk,
// slowdisk, pause, clock, reconfig, stall), keeps out those without which it still fails,
// and prints the replay command for that smaller set, e.g.
//
//	go test ./internal/sim -run 'TestLinearizable$' -seed N -sim.disable=disk,slowdisk -v
//
// A 10,000-seed soak (without -race; about 50 seeds/s on an idle 2-core
// machine, so 3-4 minutes):
//
//	go test ./internal/sim -run 'TestLinearizable$' -sim.seeds=10000 -sim.base=100000 -timeout 60m
//
// TestCheckerCatchesDiffWithoutTrunc and TestCheckerCatchesReproposedForwards
// show that the checks catch real protocol mistakes, switched on with
// zabtest.SimConfig.Mistake (test-only): a DIFF instead of a TRUNC, and a
// leader that proposes every copy of a forwarded write it receives;
// TestCheckerCatchesDuplicateRetries and TestCheckerCatchesRetryWithoutSince
// that they catch a client that retries a write under a new ReqID or
// without Since.
//
// The mistake "forget a retried write's result too" (proposal.Step.Once for
// a write proposed more than once; Config.ForgetRetried, -sim.forgetretried)
// is caught only by internal/proposal's
// TestFinishedForgetsOnlyWritesProposedOnce, not here: it needs a copy of
// the write's earlier attempt committed after the retry's result returned,
// and zab never commits one. Such copies do reach the leader late (the
// stalled links and the network's duplicates deliver a few in every
// hundred seeds: Result.LateAttempts), but a learner's forwards reach its
// leader in the order sent (zab.Transport's promise, which zab/tcp keeps
// across reconnections), so within a reign the retry comes after its
// earlier attempts, which the leader proposed once or dropped below the
// learner's low-water mark; a copy sent in an older reign carries that
// epoch and either was in the newer reign's history before the retry or
// never commits. The check above would fail a run in which one did.
//
// RunSessions (TestSimSessions, TestSimLock) runs sessions, ephemerals,
// watches and the lock recipe the same way (its writes, too, go through
// internal/proposal: encoding, leader stamp, decoding and retry rule, on
// virtual time): every peer steps the session
// core coord ships, session.Replica, on virtual time, as coord's
// maintenance goroutine steps it (heartbeats acknowledged once zab's
// leader reports a quorum answered a ping round sent after they arrived,
// as coord's zab.Node reports it, expiry by the leader's tracker, the owner's
// Connected/Suspended/Lost), and checks that ephemerals exist iff their
// session lives, that no session is expired while its owner may still hold
// its lease, that watch events come in zxid order without gaps or
// duplicates, and that lock fencing tokens only increase with never two
// valid holders. The lock clients run the queue protocol recipes.Lock
// ships, internal/lockcore's deterministic core, driven over the simulated
// tree and sessions as recipes drives it through a coord.Session (reads
// and watches go to the client's home replica at once, so nothing is
// applied between two reads in a row). Replay with
//
//	go test ./internal/sim -run 'TestSimSessions$' -seed N -v
package sim
