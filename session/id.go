package session

import "fmt"

// ID identifies a session. coord uses the zxid of the session's createSession
// txn as its id: zxids are unique across leaders (epoch<<32 | counter), and
// the id is positive as long as the epoch is below 2^31. Zero means "no
// session" (tree.Txn.Session == 0) and is never valid.
type ID int64

// Valid reports whether id is a usable session id (positive).
func (id ID) Valid() bool { return id > 0 }

// String formats id in hex the way ZooKeeper logs session ids ("0x1000002a"),
// negative values as their two's complement like Java's Long.toHexString.
func (id ID) String() string { return fmt.Sprintf("0x%x", uint64(id)) }

// Epoch returns the epoch of the leader that created the session, read from
// the zxid the id was taken from.
func (id ID) Epoch() uint32 { return uint32(uint64(id) >> 32) }

// Counter returns the counter part of the zxid the id was taken from.
func (id ID) Counter() uint32 { return uint32(uint64(id)) }
