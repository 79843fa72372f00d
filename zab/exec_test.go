package zab

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recordingApplier applies entries by recording their zxids and answers each
// with its zxid.
type recordingApplier struct{ applied []Zxid }

func (a *recordingApplier) Apply(e Entry) any {
	a.applied = append(a.applied, e.Zxid)
	return e.Zxid
}

func (a *recordingApplier) Restore(Snapshot) error { return nil }

// TestExecutorEarlyAppliesWhatWasDurable checks the executor's order for a
// Ready that appends entries: Early (before the write) applies the
// committed entries an earlier Ready made durable, up to the first
// appended one and the first configuration entry, and completes their
// writes; a Ready that truncates, installs a snapshot, resets or records
// epochs applies nothing before its write. On the old order (everything
// applied after the write) every early case fails.
func TestExecutorEarlyAppliesWhatWasDurable(t *testing.T) {
	ents := func(zs ...Zxid) []Entry {
		out := make([]Entry, len(zs))
		for i, z := range zs {
			out[i] = Entry{Zxid: z, Data: []byte{byte(z)}}
		}
		return out
	}
	props := func(zs ...Zxid) []ProposalResult {
		out := make([]ProposalResult, len(zs))
		for i, z := range zs {
			out[i] = ProposalResult{ID: uint64(z), Zxid: z}
		}
		return out
	}
	conf := Entry{Zxid: 3, Voters: []PeerID{1, 2, 3}}
	for _, tc := range []struct {
		name      string
		rd        Ready
		applied   []Zxid   // applied by Early
		completed []uint64 // writes Early completed
	}{
		{"appends: the durable committed entries first",
			Ready{Entries: ents(3, 4), CommittedEntries: ents(1, 2, 3), Proposals: props(1, 2, 3)},
			[]Zxid{1, 2}, []uint64{1, 2}},
		{"nothing appended: all after (no write to wait for)",
			Ready{CommittedEntries: ents(1, 2), Proposals: props(1, 2)}, nil, nil},
		{"stops at a configuration entry",
			Ready{Entries: ents(5), CommittedEntries: []Entry{ents(1, 2)[0], ents(1, 2)[1], conf, ents(4)[0]}, Proposals: props(1, 2, 4)},
			[]Zxid{1, 2}, []uint64{1, 2}},
		{"truncates", Ready{Truncate: true, TruncateAfter: 1, Entries: ents(3), CommittedEntries: ents(1, 2), Proposals: props(1, 2)}, nil, nil},
		{"records epochs", Ready{HardState: HardState{AcceptedEpoch: 2, CurrentEpoch: 2}, Entries: ents(3), CommittedEntries: ents(1, 2)}, nil, nil},
		{"installs a snapshot", Ready{Snapshot: &Snapshot{Zxid: 1}, Entries: ents(3), CommittedEntries: ents(2)}, nil, nil},
		{"resets", Ready{Reset: true, Entries: ents(3), CommittedEntries: ents(1)}, nil, nil},
		{"a failed write is completed after", Ready{Entries: ents(3), CommittedEntries: ents(1, 2),
			Proposals: []ProposalResult{{ID: 1, Zxid: 1}, {ID: 9, Err: ErrNoLeader}}}, []Zxid{1, 2}, []uint64{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sm := &recordingApplier{}
			var completed []uint64
			x := NewExecutor(ExecutorConfig{
				Log:          NewMemoryStorage(),
				Send:         func(Message) error { return nil },
				StateMachine: sm,
				OnProposal: func(r ProposalResult, resp any) {
					require.NoError(t, r.Err)
					assert.Equal(t, r.Zxid, resp, "write %d answered with another entry's response", r.ID)
					completed = append(completed, r.ID)
				},
			})
			x.Early(tc.rd)
			assert.Equal(t, tc.applied, sm.applied, "applied before the write")
			assert.Equal(t, tc.completed, completed, "completed before the write")
		})
	}
}

// TestExecutorEarlySends checks which messages leave before a Ready's
// write: a leader's PROPOSALs and INFORMs, which promise nothing about its
// log; an ACK, a COMMIT, a PONG and everything else wait for it.
func TestExecutorEarlySends(t *testing.T) {
	for _, tc := range []struct {
		typ   MsgType
		early bool
	}{
		{MsgProposal, true}, {MsgInform, true}, {MsgPropose, false}, {MsgSyncReq, false},
		{MsgAck, false}, {MsgCommit, false}, {MsgPong, false}, {MsgAckEpoch, false},
		{MsgProposeResp, false}, {MsgSyncResp, false}, {MsgVote, false}, {MsgFollowerInfo, false},
	} {
		t.Run(tc.typ.String(), func(t *testing.T) {
			var sent []MsgType
			x := NewExecutor(ExecutorConfig{
				Log:          NewMemoryStorage(),
				Send:         func(m Message) error { sent = append(sent, m.Type); return nil },
				StateMachine: &recordingApplier{},
			})
			x.Early(Ready{Entries: []Entry{{Zxid: 1}}, Messages: []Message{{Type: tc.typ, To: 2}}})
			assert.Equal(t, tc.early, len(sent) == 1, "sent before the write: %v", sent)
		})
	}
}
