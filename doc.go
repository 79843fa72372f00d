// Package coord is the overview of the coord module, which gives Go services
// ZooKeeper's coordination guarantees in-process: each replica of a service joins a cluster with coord.Join, the
// replicas find each other by gossip (hashicorp/memberlist), elect a leader,
// replicate every change through a quorum with Zab, and each holds the whole
// znode tree in memory. Locks, leader election, configuration, barriers,
// queues, counters and group membership are recipes on top.
//
// The module's packages:
//
//   - coord: Join, Config, the public znode operations, sessions, watches.
//   - tree: the znode data model (paths, Stat, node kinds, watches, multi,
//     point-in-time snapshots, digest), knowing nothing of networks or disks.
//   - zab: the replication protocol as a deterministic state machine
//     (election, discovery, synchronisation, broadcast), with zab/tcp, the
//     authenticated peer transport, and zab/wal, the durable log and snapshots.
//   - session: session timeouts, the leader's expiry tracker and the owner's
//     Connected/Suspended/Lost state machine.
//   - recipes: locks, elections and the other Curator-style recipes, built
//     only on the public coord API.
//
// The design notes that fix the costly decisions (gossip is not the quorum,
// a deterministic protocol core, durability and read/write paths) are in the
// repository's DESIGN.md; README.md has the commands to run the demo and the
// tests.
package coord
