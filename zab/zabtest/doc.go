// Package zabtest is zab's simulator, kept out of zab's production API as
// etcd-io/raft keeps rafttest: Sim runs whole ensembles of zab.Peers on a
// seeded, single-threaded network with a virtual clock (drops, delays,
// duplicates, reordering, partitions, crashes that keep only what was
// durable, torn writes, failed and slow fsyncs, pauses, clock jumps); every
// run replays from its seed.
//
// Each peer's Ready is carried out by zab.Executor, the one Node uses, over
// an in-memory zab.LogWriter (a zab.MemoryStorage whose writes a simulated
// crash can cut after any record), so the simulator checks the persist and
// send order that ships, including a SNAP installed in two steps.
//
// SimConfig.Mistake plants a known protocol or persistence error (see
// Mistake), for tests that show the checks catch it; production code has
// no way to switch one on.
package zabtest
