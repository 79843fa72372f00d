// Package coord gives a Go service ZooKeeper's coordination guarantees
// in-process. Every replica of the service calls Join; the replicas find
// each other by gossip, elect a leader, replicate every change through a
// quorum (Zab) and each hold the whole znode tree in memory.
//
// # Guarantees
//
//   - A write (Create, Set, Delete, Multi) returns after a quorum has made it
//     durable (with a DataDir) and the local replica has applied it, so the
//     caller reads its own writes on this node. Writes are applied in one
//     total order (zxid) everywhere.
//   - A write whose fate cannot be known returns an error wrapping
//     ErrOutcomeUnknown, never a guess. Writes carry a request id and are
//     retried under it while their context allows, so a retry never applies
//     twice and a sequential create never leaves an orphan node.
//   - Reads (Get, Exists, Children) answer from the local replica: they are
//     sequentially consistent, like ZooKeeper's. Sync followed by a read is
//     linearizable: the leader confirms with a quorum that it still leads
//     before answering (stronger than ZooKeeper's sync).
//   - Watches are ZooKeeper's (one-shot data/exists/child, persistent,
//     persistent recursive), delivered on channels in zxid order; a watcher
//     gets an event before any read on this node returns the new state. A
//     persistent watch can resume from a zxid with WatchFrom.
//   - Ephemeral nodes belong to a Session. The leader expires a session
//     whose heartbeats stop for its timeout and deletes its ephemerals in one
//     txn. The owner sees Connected, Suspended (stop acting on locks and
//     leadership) and Lost, and Lost is reported no later than the leader
//     can have expired the session.
//   - The voter set is a replicated configuration, never "whoever gossip
//     sees": Voters (or BootstrapExpect) only starts it. Any other node
//     observes (a full read copy, no vote). AddVoter and RemoveVoter change
//     it one voter at a time and refuse a change that would leave the
//     voters without a live quorum; Voters reports it.
//
// # The caller's duties
//
//   - Give every node a unique, stable NodeID and the same Voters (or
//     BootstrapExpect) and Cluster; keep DataDir across restarts. A voter
//     that lost its DataDir restarts empty and counts toward no quorum (its
//     vote and acknowledgements are ignored) until it has synced from the
//     established leader, and so does a voter that has never synced (the
//     two cannot be told apart): with one voter of three down and another
//     never synced, no leader is elected until a voter holding the history
//     returns. Start the voters together (a first leader waits up to
//     SyncLimit for every voter to sync) and check that they are synced
//     before taking a leader down on purpose. To grow the cluster, start the new node as an
//     observer (Role RoleObserver, the original Voters) and promote it with
//     AddVoter once it has joined, or let Autopilot (on by default with
//     BootstrapExpect) keep a target number of voters: then every node runs
//     the same configuration and a node outside the voters observes until
//     autopilot promotes it.
//   - Use a SecretKey on any network that others can reach.
//   - Pass contexts with deadlines: writes wait for a quorum and retry
//     through elections until their context ends.
//   - Read watch and session channels promptly. A persistent watch holds
//     MaxWatchBacklog events for a slow reader, then ends with
//     ErrWatchOverflow.
//   - Stop acting on anything tied to a session (a lock, a leadership) when
//     it is Suspended, and give it up when it is Lost.
//   - Call Close when the service stops: the node's sessions end at once
//     (their ephemerals vanish everywhere) and every goroutine stops.
//
// # Concurrency
//
// Node, Session and Watch methods are safe for concurrent use. Nothing is
// global: several nodes (of one or several clusters) can live in one
// process, as the examples and tests do. Errors are sentinels to compare
// with errors.Is: ErrNoNode, ErrNodeExists, ErrBadVersion, ErrNotEmpty,
// ErrSessionExpired, ErrNoQuorum, ErrOutcomeUnknown, ErrClosed and the rest
// in errors.go.
//
// # Operations
//
// Stats reports a node's state and counters (numbers and durations).
// Package coord/admin serves health checks (liveness, readiness), Stats,
// members and the leader over HTTP; coord/admin/prom exports Stats as
// Prometheus metrics. Backup writes a consistent image of the tree while
// writes go on, and Restore seeds a new cluster's data directories from it.
// examples/coordctl is an inspector CLI built on these and the znode API.
package coord
