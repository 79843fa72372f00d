package zab

import "fmt"

// Zxid is a ZooKeeper transaction id: the epoch of the leader that proposed the
// transaction in the high 32 bits and a per-epoch counter in the low 32 bits.
// Zxids order every change to the replicated state.
type Zxid uint64

// MaxEpoch bounds epochs so that zxids stay positive as int64, as
// ZooKeeper's are (a leader refuses to go beyond it; 2^31 elections are out
// of reach, so only forged messages get there).
const MaxEpoch = 1<<31 - 1

// epochReserve is how far below MaxEpoch the epochs a peer takes from
// others stop: a learner's accepted or current epoch above
// MaxEpoch-epochReserve is refused as forged (an honest cluster needs
// 2^31-2^20 elections to get there), so no message can move the cluster to
// the last epochs, where it could elect no leader any more. Elections
// still have 2^20 epochs left beyond it.
const epochReserve = 1 << 20

// maxPlausibleEpoch is the largest epoch a peer adopts from another.
const maxPlausibleEpoch = MaxEpoch - epochReserve

// NewZxid returns the zxid for counter within epoch.
func NewZxid(epoch, counter uint32) Zxid { return Zxid(uint64(epoch)<<32 | uint64(counter)) }

// Epoch returns the leader epoch that proposed z.
func (z Zxid) Epoch() uint32 { return uint32(z >> 32) }

// Counter returns the position of z within its epoch.
func (z Zxid) Counter() uint32 { return uint32(z) }

// String formats z as epoch:counter in hex, the way ZooKeeper logs show it.
func (z Zxid) String() string { return fmt.Sprintf("0x%x:%x", z.Epoch(), z.Counter()) }

// PeerID identifies a member of the ensemble (ZooKeeper's myid). Zero is not a valid id.
type PeerID uint64
