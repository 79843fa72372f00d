package wal

import (
	"fmt"
	"log/slog"
)

// Defaults applied by Options for zero fields.
const (
	// DefaultSegmentSize is the preallocated size of a log segment.
	DefaultSegmentSize = 64 << 20
	// DefaultMaxRecordSize bounds one record's data, and so every allocation
	// recovery makes from a length read off disk.
	DefaultMaxRecordSize = 8 << 20
	// minSegmentSize leaves room for a segment header, one frame and a seal.
	minSegmentSize = segHeaderSize + 2*frameHeaderSize + 1
)

// Options configures a Log. The zero value is valid: every zero field takes
// its default. Options are copied by Open.
type Options struct {
	// SegmentSize is the size each new segment file is preallocated to
	// (default DefaultSegmentSize). Existing segments keep the size they have.
	SegmentSize int64
	// MaxRecordSize bounds the data of one record (default
	// DefaultMaxRecordSize, lowered to fit SegmentSize). Records written with a
	// larger limit fail recovery with a smaller one.
	MaxRecordSize int
	// NoGroupCommit disables group commit: Append writes and fsyncs every
	// record on its own (one fsync per record, serialized), and Sync has
	// nothing left to do. It exists to measure what group commit buys;
	// production code leaves it false.
	NoGroupCommit bool
	// Logger receives recovery warnings (torn tails, leftover files). Nil
	// discards them.
	Logger *slog.Logger
}

// Validate reports the first invalid field, naming it.
func (o Options) Validate() error {
	_, err := o.resolve()
	return err
}

// resolve returns o with defaults applied, or an error naming the bad field.
func (o Options) resolve() (Options, error) {
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.SegmentSize < minSegmentSize {
		return o, fmt.Errorf("wal: Options.SegmentSize %d below the minimum %d", o.SegmentSize, minSegmentSize)
	}
	room := o.SegmentSize - segHeaderSize - 2*frameHeaderSize
	if o.MaxRecordSize == 0 {
		o.MaxRecordSize = int(min(int64(DefaultMaxRecordSize), room))
	}
	if o.MaxRecordSize < 0 || int64(o.MaxRecordSize) > room || int64(o.MaxRecordSize) >= metaFlag {
		return o, fmt.Errorf("wal: Options.MaxRecordSize %d must be in [1, %d] for Options.SegmentSize %d",
			o.MaxRecordSize, room, o.SegmentSize)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}
