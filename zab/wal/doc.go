// Package wal is the durable storage of one Zab peer: the transaction log,
// the epoch files and the snapshot store, all in one data directory. It knows
// nothing of the protocol; zxids are plain uint64 (epoch<<32 | counter) and
// record and snapshot payloads are opaque bytes.
//
// # Files
//
//	log-<first zxid, 16 hex>.wal    log segment (segment.go, record.go)
//	snap-<zxid, 16 hex>.snap        snapshot (snapshot.go)
//	acceptedEpoch, currentEpoch     epoch files (epoch.go)
//	syncEpoch                       epoch file present while a synchronisation is written (epoch.go)
//	identity                        cluster name, cluster id and node id (identity.go)
//	logBase                         zxid through which the log's front was removed (base.go)
//	*.tmp                           unfinished writes, removed on open
//	snapstream.tmp                  a snapshot being received from a leader (zab.Node), removed on start
//	wal.lock                        flock held by the open Log (one writer per directory)
//
// A segment is preallocated (Options.SegmentSize) and starts with a 24-byte
// header (magic, version, first zxid, a random salt, CRC32C); frames follow.
// A frame is a 16-byte header (data length, zxid, CRC32C over header and data
// seeded with the segment's salt) and the data. The salt keeps record payloads
// (client data) from forging frames that recovery would believe. Unused space is zeros, and a
// zero header means "end of data". When a record does not fit, the segment is
// closed by a seal frame naming the next segment's first zxid and fsynced
// before the next segment is created (written under a temporary name,
// fsynced, renamed, directory fsynced). So a segment that has a successor is
// always complete, sealed and durable.
//
// # Recovery rules (Open)
//
// Every frame of every segment is read and checked (length bound, CRC, zxid
// strictly increasing across the whole log, first record equal to the
// segment name).
//
//   - A segment before the last must be non-empty and end in a seal naming the
//     next segment. Anything else (an invalid frame, zeros before the seal, a
//     wrong seal) is a *CorruptError naming the file and the offset: such a
//     segment was fsynced before its successor existed, so damage there is
//     corruption, never a torn write.
//   - In the last segment, the scan stops at the first zero header, invalid
//     frame or seal, at offset P. Every byte offset after P is then examined
//     for a valid frame with a zxid above the last good record. If one
//     exists, P is not the tail: *CorruptError at P. Otherwise P is the tail:
//     an invalid frame there is a torn write, the bytes from P to the end of
//     the file are durably zeroed and a warning is logged; a stray seal (crash
//     after sealing, before the next segment was created) and non-zero
//     garbage after a zero header are zeroed the same way.
//   - A last segment left without records is removed, with the seal of the
//     segment before it.
//   - A frame whose length exceeds Options.MaxRecordSize but whose CRC is
//     valid (written with a larger limit) fails Open with ErrRecordTooLarge
//     wherever it is; it is never taken for a torn tail.
//
// Consequence: bit flips inside the last record of the log look exactly like
// a torn write and lose that record (with a warning); bit flips in any record
// followed by a valid one are a hard error. A power loss that persisted a
// later page of an unsynced batch but not an earlier one also reports
// corruption rather than guessing; a process crash (kill -9) cannot cause
// that, since the page cache survives it.
//
// # Duties of the caller (the Zab driver)
//
//   - ACK a proposal, or count yourself in a quorum, only after a Sync that
//     started after its Append returned nil.
//   - The log must stay gap-free from FirstZxid on, because a DIFF is served
//     from it. TruncateAfter keeps a prefix and PurgeThrough drops whole
//     segments from the front, so both preserve that. For a SNAP, write the
//     snapshot first, then TruncateAfter(0) to empty the log; on start, if the
//     log ends below the newest snapshot's zxid, empty it the same way (a crash
//     fell between the two steps). Records above the snapshot from before a
//     SNAP are uncommitted history that the next synchronization truncates.
//   - Purge with Retain only up to what a valid retained snapshot covers.
//
// # Concurrency and goroutines
//
// Log, SnapshotStore and the epoch functions are safe for concurrent use (see
// each type). The package starts no goroutines: group commit is done by the
// callers of Log.Sync themselves (one runs the fsync, the others wait for
// it).
package wal
