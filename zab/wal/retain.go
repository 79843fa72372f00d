package wal

import (
	"errors"
	"fmt"
	"io/fs"
)

// RetainResult reports what Retain kept and removed.
type RetainResult struct {
	Kept            []uint64 // zxids of the valid snapshots kept, newest first
	Skipped         []uint64 // zxids of invalid snapshots newer than the oldest kept one, left in place
	Removed         []uint64 // zxids of the snapshots removed
	RemovedSegments int      // log segments purged
}

// Retain keeps the newest keep valid snapshots and removes older snapshot
// files; then it purges the log segments that no kept snapshot needs (all
// their records are at or below the oldest kept snapshot's zxid). Validity is
// checked by reading each candidate in full, so a corrupt newest snapshot
// never counts toward keep and the log an older valid one needs survives.
// Corrupt snapshots newer than the oldest kept one are left for inspection.
// With no valid snapshot nothing is removed. l may be nil to skip the log.
func Retain(l *Log, s *SnapshotStore, keep int) (RetainResult, error) {
	var res RetainResult
	if keep < 1 {
		return res, fmt.Errorf("wal: Retain keep %d must be at least 1", keep)
	}
	list, err := s.List()
	if err != nil {
		return res, err
	}
	i := len(list) - 1
	for ; i >= 0 && len(res.Kept) < keep; i-- {
		sn, err := s.Open(list[i].Zxid)
		switch {
		case err == nil:
			sn.Close()
			res.Kept = append(res.Kept, list[i].Zxid)
		case errors.Is(err, ErrCorrupt) || errors.Is(err, fs.ErrNotExist):
			s.logger.Warn("wal: retention skips invalid snapshot", "file", list[i].Path, "err", err.Error())
			res.Skipped = append(res.Skipped, list[i].Zxid)
		default:
			return res, err
		}
	}
	if len(res.Kept) == 0 {
		return res, nil
	}
	for ; i >= 0; i-- {
		if err := s.Remove(list[i].Zxid); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return res, err
		}
		res.Removed = append(res.Removed, list[i].Zxid)
	}
	if l != nil {
		n, err := l.PurgeThrough(res.Kept[len(res.Kept)-1])
		res.RemovedSegments = n
		if err != nil {
			return res, err
		}
	}
	return res, nil
}
