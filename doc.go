// Package coord is the overview of the coord module, which gives Go services
// ZooKeeper's coordination guarantees in-process, with no separate servers
// to run: each replica of a service joins a cluster with coord.Join, the
// replicas find each other by gossip (hashicorp/memberlist), elect a leader,
// replicate every change through a quorum with Zab, and each holds the whole
// znode tree in memory. Locks and leader election are recipes on top.
//
// This package holds no code. Import the packages below it:
//
//	import (
//		"github.com/coord-dev/coord/coord"   // Join, Node, Session, znode operations, watches
//		"github.com/coord-dev/coord/recipes" // Lock, Election
//	)
//
// # Where to start
//
// Build a coord.Config (coord.LANConfig for a real network, coord.LocalConfig
// for several nodes on one machine), give each replica its NodeID, the
// cluster's Voters and some Seeds, and call coord.Join. Open a coord.Session
// for anything that must live only as long as this process (ephemeral nodes,
// locks, leadership), and hand it to a recipe such as recipes.NewLock. The
// coord package documentation states the guarantees and the caller's
// duties; the recipes documentation says how a holder must react when its
// session is Suspended. The module's README walks through a complete program
// and the runnable examples under examples/.
//
// # The module's packages
//
//   - coord: Join, Config, the public znode operations, sessions, watches,
//     reconfiguration (AddVoter, RemoveVoter).
//   - recipes: locks, elections and the other Curator-style recipes, built
//     only on the public coord API.
//   - tree: the znode data model (paths, Stat, node kinds, watches, multi,
//     point-in-time snapshots, digest), knowing nothing of networks or disks.
//   - zab: the replication protocol as a deterministic state machine
//     (election, discovery, synchronisation, broadcast), with zab/tcp, the
//     authenticated peer transport, and zab/wal, the durable log and snapshots.
//   - session: session timeouts, the leader's expiry tracker and the owner's
//     Connected/Suspended/Lost state machine.
//
// An application needs only coord and recipes; the others are the
// implementation, importable for tools and tests.
//
// # Design decisions
//
// A few decisions shape everything else and are costly to change:
//
//   - Gossip is not the quorum. Gossip finds peers and reports liveness; the
//     voter set is a replicated, durable configuration started from an
//     explicit Voters list (or a BootstrapExpect count) and changed one voter
//     at a time, so two halves of a partition never both form a quorum.
//   - The protocol core (zab.Peer) is a deterministic state machine: no
//     goroutines, clock, randomness or I/O of its own. The same core runs over
//     TCP in production and in a seeded simulator in the tests, where
//     thousands of fault schedules replay from their seeds.
//   - Durability: with a DataDir, nothing is acknowledged before a quorum has
//     fsynced it; recovery is the newest valid snapshot plus the log after it.
//   - Reads are local and sequentially consistent, writes go through the
//     leader and return once applied locally (read-your-writes), and Sync
//     makes the next read linearizable: the leader confirms with a quorum that
//     it still leads before answering.
package coord
