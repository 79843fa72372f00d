package zab

// Mistake re-introduces a known protocol error into a Peer, so that tests
// can show that the simulator (internal/sim) catches it.
//
// It is for testing the test harness only; never set Config.Mistake in
// production: every value but MistakeNone makes the ensemble unsafe.
type Mistake uint8

const (
	// MistakeNone is the correct protocol (the zero value).
	MistakeNone Mistake = iota
	// MistakeDiffWithoutTrunc makes a leader answer a learner whose last
	// zxid is not in the leader's log (it holds entries of an old epoch
	// that the new history dropped) with a DIFF from that zxid instead of
	// a TRUNC: the learner keeps its divergent entries and applies them
	// once the commit point passes them, so its state machine diverges
	// from the others (and, elected later, it would make others apply
	// them too).
	MistakeDiffWithoutTrunc
)

// String names m.
func (m Mistake) String() string {
	switch m {
	case MistakeNone:
		return "none"
	case MistakeDiffWithoutTrunc:
		return "diff-without-trunc"
	}
	return "unknown"
}
