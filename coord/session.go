package coord

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/coord-dev/coord/internal/msgpackcheck"
	"github.com/coord-dev/coord/session"
	"github.com/coord-dev/coord/tree"
)

// SessionEvent is a change of a session's state: Connected (the first),
// Suspended, Reconnected or Lost (the last), with when and why.
type SessionEvent = session.Event

// SessionEventType is the kind of a SessionEvent.
type SessionEventType = session.EventType

// Session event types.
const (
	SessionConnected   = session.EventConnected
	SessionSuspended   = session.EventSuspended
	SessionReconnected = session.EventReconnected
	SessionLost        = session.EventLost
)

// SessionOptions configure a session.
type SessionOptions struct {
	// Timeout is the requested session timeout; it is clamped to the
	// node's [MinSessionTimeout, MaxSessionTimeout]. Zero means
	// DefaultSessionTimeout.
	Timeout time.Duration
}

// Session owns ephemeral nodes and watches. It heartbeats the leader; if the
// leader hears nothing for the session's timeout it expires the session and
// deletes its ephemerals in one txn. The owner side moves Connected →
// Suspended (no recent acknowledgement: stop relying on ephemerals and
// locks) → Lost (the timeout has passed: the leader has expired the
// session, or will) and reports each step on Events.
//
// All operations of a Node are available on a Session; writes through a
// Lost session fail with ErrSessionExpired.
type Session struct {
	n       *Node
	id      int64
	timeout time.Duration
	events  chan SessionEvent

	mu      sync.Mutex
	status  session.Status // as of the last event delivered (the core holds the State)
	watches map[watchSink]struct{}
	lease   chan struct{} // Suspended's channel for this Connected period, made on demand
	broken  chan struct{} // a closed channel, for Suspended once not Connected
	closing bool          // the owner asked to close it
	closed  bool          // ended: see endErr
	endErr  error         // ErrClosed or ErrSessionExpired
}

// sessionEventBuffer is how many session events wait for a slow reader; the
// states are few, so only a consumer that never reads loses (old) events.
const sessionEventBuffer = 16

// Session creates a new session. It returns once the session is created on
// the quorum and applied locally.
func (n *Node) Session(ctx context.Context, opts SessionOptions) (*Session, error) {
	if err := n.usable(); err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = n.cfg.DefaultSessionTimeout
	}
	timeout = session.Negotiate(timeout, n.cfg.MinSessionTimeout, n.cfg.MaxSessionTimeout)
	sent := time.Now()
	res, z, err := n.proposeAt(ctx, 0, tree.Op{Type: tree.OpCreateSession, Timeout: int32(timeout.Milliseconds())})
	if err != nil {
		return nil, err
	}
	// The session's id is the zxid of its createSession txn: the first
	// one's, if a retry was a duplicate.
	id := res.Session
	if id == 0 {
		id = int64(z)
	}
	s := &Session{n: n, id: id, timeout: timeout, events: make(chan SessionEvent, sessionEventBuffer),
		status: session.Connected, watches: make(map[watchSink]struct{})}
	n.sessMu.Lock()
	n.sessions[id] = s
	n.sessMu.Unlock()
	// The session core takes it over (its first event is Connected).
	opened := make(chan error, 1)
	n.push(coreInput{kind: inOpen, id: session.ID(id), timeout: timeout, sent: sent, now: time.Now(), reply: opened})
	select {
	case err = <-opened:
	case <-n.done:
		err = n.Err()
		if err == nil {
			err = ErrClosed
		}
	}
	if err == nil {
		err = n.Err()
	}
	if err != nil {
		// The node failed while the session was being created: fail-stop
		// may have missed it.
		s.finish(err)
		return nil, err
	}
	return s, nil
}

// ID returns the session's id (the zxid of its creation).
func (s *Session) ID() int64 { return s.id }

// Timeout returns the negotiated session timeout.
func (s *Session) Timeout() time.Duration { return s.timeout }

// Events returns the channel of state changes. It is buffered; an
// application that never reads it misses changes, never blocks the node.
// The channel is closed after the Lost event (or by Close).
func (s *Session) Events() <-chan SessionEvent { return s.events }

// State returns the session's current state: SessionStateConnected,
// SessionStateSuspended or SessionStateLost.
func (s *Session) State() SessionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sessionStateOf(s.status)
}

// Remaining returns how long the session is certain to stay alive, by the
// clock now: the time until the leader could expire it, counted from the
// newest acknowledged heartbeat (zero once Lost or closed). Unlike
// Suspended it does not wait for the session's next maintenance tick, so a
// lock holder can check it right before acting.
func (s *Session) Remaining() time.Duration {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return 0
	}
	s.n.coreMu.Lock()
	defer s.n.coreMu.Unlock()
	return s.n.core.Remaining(session.ID(s.id), time.Now())
}

// Close ends the session: its ephemerals are deleted at once everywhere and
// its watches end with ErrClosed. It is idempotent. A session already Lost
// is gone for its owner, but the leader may not have expired it yet: Close
// then still asks for its ephemerals to be deleted at once (best effort: an
// error is not reported), instead of leaving them until the leader's expiry.
func (s *Session) Close(ctx context.Context) error {
	s.mu.Lock()
	lost := s.closed && errors.Is(s.endErr, ErrSessionExpired)
	if (s.closed && !lost) || (lost && s.closing) {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	if lost {
		s.endErr = ErrClosed // closed by its owner now, whatever happened before
	}
	s.mu.Unlock()
	op := tree.Op{Type: tree.OpCloseSession, Session: s.id}
	if lost {
		_, _ = s.n.propose(ctx, 0, op)
		return nil
	}
	s.n.push(coreInput{kind: inClosing, id: session.ID(s.id)})
	_, err := s.n.propose(ctx, 0, op)
	if err != nil && !errors.Is(err, ErrSessionExpired) {
		return err
	}
	s.finish(ErrClosed)
	return nil
}

// usable reports whether the session can still be used.
func (s *Session) usable() error {
	if err := s.n.usable(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return fmt.Errorf("%w: session %s", s.endErr, session.ID(s.id))
	case s.status == session.Lost:
		return fmt.Errorf("%w: session %s", ErrSessionExpired, session.ID(s.id))
	}
	return nil
}

func (s *Session) addWatch(w watchSink) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watches[w] = struct{}{}
}

func (s *Session) forgetWatch(w watchSink) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.watches, w)
}

func (s *Session) dropWatch(w watchSink) {
	s.forgetWatch(w)
	s.n.tree.RemoveWatcher(w)
}

// finish ends the session locally: the node forgets it, every watch gets a
// final event with err and the events channel closes. The channel is closed
// under s.mu with closed set, and every sender (deliverLocked) holds s.mu and
// checks closed first, so nothing ever sends on it once closed, whichever
// goroutine (an acknowledgement, an apply, the maintenance tick) still holds
// the session.
func (s *Session) finish(err error) {
	s.n.sessMu.Lock()
	if s.n.sessions[s.id] == s {
		delete(s.n.sessions, s.id)
	}
	s.n.sessMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed, s.endErr = true, err
	s.breakLeases()
	ws := make([]watchSink, 0, len(s.watches))
	for w := range s.watches {
		ws = append(ws, w)
	}
	s.watches = map[watchSink]struct{}{}
	close(s.events)
	s.mu.Unlock()
	s.n.push(coreInput{kind: inForget, id: session.ID(s.id)})
	for _, w := range ws {
		s.n.tree.RemoveWatcher(w)
		w.end(err)
	}
}

// deliverLocked hands one event of the session core to the owner: on the
// channel (dropping the oldest if the reader is behind) and, at Suspended
// or Lost, to the Suspended channel. A closed session drops it (its channel
// is closed). Caller holds s.mu.
func (s *Session) deliverLocked(ev SessionEvent) {
	if s.closed {
		return
	}
	s.status = ev.Type.Status()
	select {
	case s.events <- ev:
	default:
		// A reader that never reads loses the oldest event, not the newest.
		select {
		case <-s.events:
		default:
		}
		s.events <- ev
	}
	if ev.Type == session.EventSuspended || ev.Type == session.EventLost {
		s.breakLeases()
	}
}

// Suspended returns a channel closed at the session's next Suspended or
// Lost transition (at once if it is not Connected now). Anything that relies
// on the session, a lock or a leadership, stops acting when it closes:
// between Suspended and Lost the leader may already be about to expire the
// session. Unlike Events, any number of callers may use it. Every call in
// one Connected period returns the same channel, so calling it often costs
// nothing that lasts.
func (s *Session) Suspended() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.status != session.Connected {
		if s.broken == nil {
			s.broken = make(chan struct{})
			close(s.broken)
		}
		return s.broken
	}
	if s.lease == nil {
		s.lease = make(chan struct{})
	}
	return s.lease
}

// breakLeases closes the Suspended channel of the Connected period that
// ends; the next Connected period gets a new one. Caller holds s.mu.
func (s *Session) breakLeases() {
	if s.lease != nil {
		close(s.lease)
		s.lease = nil
	}
}

// appMsg is a session heartbeat (owner → leader) or its acknowledgement,
// or a diverged replica's request to resynchronise (→ leader) and the
// leader's grant (see digest.go).
type appMsg struct {
	Kind    uint8 `msgpack:"k"`
	Session int64 `msgpack:"s"`
	Sent    int64 `msgpack:"t"` // the owner's stamp (session.Replica.Stamp); echoed in the ack; a grant's epoch
	OK      bool  `msgpack:"ok,omitempty"`
}

const (
	msgHeartbeat    = 1
	msgHeartbeatAck = 2
	msgResyncAsk    = 3
	msgResyncGrant  = 4
	msgResyncDone   = 5
)

func encodeAppMsg(m appMsg) ([]byte, error) { return msgpack.Marshal(&m) }

// decodeAppMsg decodes a MsgApp payload from a peer (pure, fuzzed).
func decodeAppMsg(b []byte) (appMsg, error) {
	var m appMsg
	if err := msgpackcheck.Check(b, 4); err != nil {
		return m, err
	}
	return m, msgpack.Unmarshal(b, &m)
}
