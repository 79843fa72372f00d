// Package sim checks, in zab's deterministic simulator, that the replicated
// znode tree is linearizable under faults (issue 6).
//
// Run drives one seed: a zab.Sim ensemble of 3 or 5 voters (and 0 or 1
// observer) where every peer's state machine is a real tree.Tree fed the
// entries zab hands it, encoded as coord encodes them (tree op, proposer,
// time, unique ReqID). Virtual clients issue creates (plain and
// sequential), sets, CAS, deletes, multis and Sync+get reads against their
// peer, with call and return times in virtual time; a write is retried only
// as coord's proposeAt retries it (same peer, same ReqID, on a zab verdict)
// and one whose outcome is never learnt stays pending. Meanwhile the seed
// drops, duplicates, delays and reorders messages, isolates the leader,
// partitions random halves, builds bridges, cuts links one way and crashes
// and restarts peers (one, the leader, or all) with only their persisted
// state. Then everything heals and the run checks:
//
//   - the history, with porcupine against a model of the znode subset (an
//     Unknown verdict counts as a failure);
//   - every peer's tree digest after every zxid, and after heal equal trees
//     and identical committed logs on every peer;
//   - that no acknowledged write is missing from the final history;
//   - read-your-writes of plain local gets;
//   - zab.Sim's own invariants (one established leader per epoch, Sync
//     covering every earlier applied write, no divergent apply).
//
// Replay a failing seed with
//
//	go test ./internal/sim -run 'TestLinearizable$' -seed N -v
//
// which prints the porcupine visualisation file, an explanation (longest
// linearizable prefix and the operation that cannot follow it) and the
// run's schedule. A soak: go test ./internal/sim -run 'TestLinearizable$'
// -sim.seeds=10000 -sim.base=1000.
package sim
