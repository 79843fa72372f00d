package session

import (
	"errors"
	"fmt"
	"time"
)

// Status is the owner's view of its session, what the application sees.
type Status uint8

// The owner-side statuses. A session starts Connected, may go back and forth
// between Connected and Suspended, and ends Lost.
const (
	// Connected: a leader acknowledged a recent heartbeat; the session is
	// safely alive.
	Connected Status = iota + 1
	// Suspended: the leader or quorum is lost, or no recent heartbeat was
	// acknowledged. The session may still be alive, but the owner cannot
	// know, so anything that relies on it (a lock, a leadership) must stop
	// acting until it is Connected again.
	Suspended
	// Lost: the session timeout has passed since the newest acknowledged
	// heartbeat was sent, or the leader said the session is gone. The leader
	// has expired the session or will; its ephemerals are gone or going. Lost
	// is terminal: a new session is needed.
	Lost
)

var statusNames = [...]string{"", "Connected", "Suspended", "Lost"}

// String returns the status's name.
func (s Status) String() string {
	if s >= Connected && s <= Lost {
		return statusNames[s]
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// EventType is the kind of transition an Event reports.
type EventType uint8

// Event types.
const (
	// EventConnected: the session was established (the first event).
	EventConnected EventType = iota + 1
	// EventSuspended: Connected -> Suspended.
	EventSuspended
	// EventReconnected: Suspended -> Connected.
	EventReconnected
	// EventLost: Connected or Suspended -> Lost.
	EventLost
)

var eventTypeNames = [...]string{"", "Connected", "Suspended", "Reconnected", "Lost"}

// String returns the event type's name.
func (e EventType) String() string {
	if e >= EventConnected && e <= EventLost {
		return eventTypeNames[e]
	}
	return fmt.Sprintf("EventType(%d)", uint8(e))
}

// Status returns the status a session is in after an event of type e.
func (e EventType) Status() Status {
	switch e {
	case EventConnected, EventReconnected:
		return Connected
	case EventSuspended:
		return Suspended
	case EventLost:
		return Lost
	}
	return 0
}

// Cause says why a transition happened.
type Cause uint8

// Causes.
const (
	// CauseCreated: the session was just established.
	CauseCreated Cause = iota + 1
	// CauseLeaderLost: the driver reported the leader or quorum lost.
	CauseLeaderLost
	// CauseNoAck: no heartbeat sent in the last SuspendAfter was acknowledged.
	CauseNoAck
	// CauseTimeout: the session timeout passed since the newest acknowledged
	// heartbeat was sent.
	CauseTimeout
	// CauseExpired: the leader said the session no longer exists.
	CauseExpired
	// CauseAck: a fresh acknowledgement arrived.
	CauseAck
	// CauseStopped: the owner's node stopped (its replication failed), so
	// nothing can keep the session alive any more.
	CauseStopped
)

var causeNames = [...]string{"", "created", "leader lost", "no ack", "timeout", "expired by leader", "ack", "node stopped"}

// String returns a short description of the cause.
func (c Cause) String() string {
	if c >= CauseCreated && c <= CauseStopped {
		return causeNames[c]
	}
	return fmt.Sprintf("Cause(%d)", uint8(c))
}

// Event is one transition of a State, for coord to deliver to the
// application (on a channel, say).
type Event struct {
	Type EventType
	// At is when the transition took effect. For a transition caused by
	// time passing (CauseNoAck, CauseTimeout) that is the threshold instant,
	// which may be earlier than the call that noticed it; tick at Deadline
	// to notice it on time.
	At    time.Time
	Cause Cause
}

// String formats e for logs.
func (e Event) String() string {
	return fmt.Sprintf("%s at %s (%s)", e.Type, e.At.Format(time.RFC3339Nano), e.Cause)
}

// Config sets the owner side's timing. Only Timeout is required; zero fields
// get defaults derived from it.
type Config struct {
	// Timeout is the negotiated session timeout (the one the leader uses).
	Timeout time.Duration
	// HeartbeatInterval is the time between heartbeats while Connected.
	// Default Timeout/3, as ZooKeeper's client pings.
	HeartbeatInterval time.Duration
	// SuspendedInterval is the time between heartbeats while Suspended,
	// shorter so that a returning leader is found fast. Default Timeout/10.
	SuspendedInterval time.Duration
	// SuspendAfter: the session is Suspended once the newest acknowledged
	// heartbeat was sent this long ago. It must exceed HeartbeatInterval
	// plus a round trip, or every heartbeat cycle suspends; the time left
	// between Suspended and Lost (Timeout-DriftMargin-SuspendAfter) is what an
	// application gets to stop acting. Default Timeout/2.
	SuspendAfter time.Duration
	// DriftMargin makes the owner declare Lost this much before the timeout
	// runs out, to cover an owner clock that runs slower than the leader's
	// (a relative rate error ρ needs a margin of ρ·Timeout). Default 0.
	DriftMargin time.Duration
}

// Defaults returns c with every zero optional field set to its default.
func (c Config) Defaults() Config {
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = c.Timeout / 3
	}
	if c.SuspendedInterval == 0 {
		c.SuspendedInterval = c.Timeout / 10
	}
	if c.SuspendAfter == 0 {
		c.SuspendAfter = c.Timeout / 2
	}
	return c
}

// Validate reports every out-of-range field of c (after Defaults), each named
// in the error, wrapped around ErrInvalidConfig. It requires
// 0 < SuspendedInterval <= HeartbeatInterval < SuspendAfter < Timeout-DriftMargin
// and DriftMargin >= 0.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...)))
	}
	if c.Timeout <= 0 {
		bad("Config.Timeout (%v) must be positive", c.Timeout)
		return errors.Join(errs...)
	}
	c = c.Defaults()
	if c.HeartbeatInterval <= 0 {
		bad("Config.HeartbeatInterval (%v) must be positive", c.HeartbeatInterval)
	}
	if c.SuspendedInterval <= 0 {
		bad("Config.SuspendedInterval (%v) must be positive", c.SuspendedInterval)
	} else if c.SuspendedInterval > c.HeartbeatInterval {
		bad("Config.SuspendedInterval (%v) must not exceed Config.HeartbeatInterval (%v)", c.SuspendedInterval, c.HeartbeatInterval)
	}
	if c.DriftMargin < 0 {
		bad("Config.DriftMargin (%v) must not be negative", c.DriftMargin)
	}
	if c.SuspendAfter <= c.HeartbeatInterval {
		bad("Config.SuspendAfter (%v) must exceed Config.HeartbeatInterval (%v)", c.SuspendAfter, c.HeartbeatInterval)
	}
	if c.SuspendAfter >= c.Timeout-c.DriftMargin {
		bad("Config.SuspendAfter (%v) must be less than Config.Timeout-Config.DriftMargin (%v)", c.SuspendAfter, c.Timeout-c.DriftMargin)
	}
	return errors.Join(errs...)
}

// State is the owner side of one session: a state machine fed heartbeat
// sends and acknowledgements, leader loss and the passage of time, which
// decides whether the application may rely on the session (Connected),
// must pause (Suspended) or has lost it (Lost). See the package doc for why
// Lost is never later than the leader's expiry.
//
// Every input takes now; times must come from one monotonic clock and should
// not decrease (a smaller now is treated as the largest seen so far). Each
// input first applies the passage of time up to now, then the input itself,
// so a late acknowledgement cannot revive a session whose lease ran out.
// Transitions are queued as Events; drain them with Events after each input.
// A State is not safe for concurrent use.
type State struct {
	cfg          Config
	status       Status
	lease        time.Time // send time of the newest acknowledged heartbeat
	lastSent     time.Time
	lastNow      time.Time
	leaderLost   bool
	leaderLostAt time.Time
	events       []Event
}

// NewState returns the owner side of a session just established with the
// negotiated cfg.Timeout. sentAt is when the createSession request was sent
// (the leader started the session's clock no earlier), now when the reply
// arrived. The first queued event is EventConnected at now (followed at once
// by Suspended and Lost if the reply took that long).
func NewState(cfg Config, sentAt, now time.Time) (*State, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if sentAt.After(now) {
		sentAt = now // the earlier of the two is the conservative lease start
	}
	s := &State{
		cfg:      cfg.Defaults(),
		status:   Connected,
		lease:    sentAt,
		lastSent: sentAt,
		lastNow:  now,
	}
	s.emit(EventConnected, now, CauseCreated)
	s.advance(now)
	return s, nil
}

// HeartbeatSent records that a heartbeat was sent at now; NextHeartbeat
// counts from it. The send time must travel with the heartbeat (or be kept by
// the driver) and come back in HeartbeatAcked.
func (s *State) HeartbeatSent(now time.Time) {
	now = s.advance(now)
	if s.status != Lost && now.After(s.lastSent) {
		s.lastSent = now
	}
}

// HeartbeatAcked records that the leader acknowledged the heartbeat sent at
// sentAt; the ack arrived at now. The lease counts from sentAt, not now: the
// leader received the heartbeat after it was sent, so its expiry clock for
// the session restarted no earlier than sentAt. Acks may arrive in any order:
// an older ack never moves the lease back. An ack reconnects a Suspended
// session if the lease is fresh again (sent less than SuspendAfter ago) and,
// when the leader was reported lost, the heartbeat was sent after that report.
// A sentAt after now is treated as now.
func (s *State) HeartbeatAcked(sentAt, now time.Time) {
	now = s.advance(now)
	if s.status == Lost {
		return
	}
	if sentAt.After(now) {
		sentAt = now
	}
	if sentAt.After(s.lease) {
		s.lease = sentAt
	}
	if s.leaderLost && !sentAt.Before(s.leaderLostAt) {
		s.leaderLost = false
	}
	if s.status == Suspended && !s.leaderLost && now.Sub(s.lease) < s.cfg.SuspendAfter {
		s.status = Connected
		s.emit(EventReconnected, now, CauseAck)
	}
}

// LeaderLost records that the driver lost the leader or the quorum at now
// (connection closed, leader change, this node lost quorum). A Connected
// session becomes Suspended; it reconnects only on the ack of a heartbeat
// sent at or after now.
func (s *State) LeaderLost(now time.Time) {
	now = s.advance(now)
	if s.status == Lost {
		return
	}
	s.leaderLost, s.leaderLostAt = true, now
	if s.status == Connected {
		s.status = Suspended
		s.emit(EventSuspended, now, CauseLeaderLost)
	}
}

// Expired records that the leader answered at now that the session does not
// exist (it expired or was closed): the session is Lost at once.
func (s *State) Expired(now time.Time) {
	now = s.advance(now)
	if s.status == Lost {
		return
	}
	s.status = Lost
	s.emit(EventLost, now, CauseExpired)
}

// Stopped records that the owner's node stopped at now (its replication
// failed): it can no longer heartbeat, so the session is Lost at once,
// however much lease is left.
func (s *State) Stopped(now time.Time) {
	now = s.advance(now)
	if s.status == Lost {
		return
	}
	s.status = Lost
	s.emit(EventLost, now, CauseStopped)
}

// Tick applies the passage of time up to now: Suspended once the lease is
// SuspendAfter old, Lost once it is Timeout-DriftMargin old. Call it at
// Deadline (and whenever convenient; extra calls are harmless).
func (s *State) Tick(now time.Time) { s.advance(now) }

// Events returns the transitions queued since the last call, oldest first,
// and clears the queue. The caller owns the returned slice.
func (s *State) Events() []Event {
	ev := s.events
	s.events = nil
	return ev
}

// Status returns the current status, as of the latest input.
func (s *State) Status() Status { return s.status }

// Config returns the configuration in use, defaults filled in.
func (s *State) Config() Config { return s.cfg }

// Lease returns the send time of the newest acknowledged heartbeat (or of
// the createSession request): the leader's expiry clock restarted no earlier.
func (s *State) Lease() time.Time { return s.lease }

// LeaseEnd returns when the session is declared Lost if no newer heartbeat is
// acknowledged: Lease + Timeout - DriftMargin. The leader cannot expire the
// session before this time (see the package doc).
func (s *State) LeaseEnd() time.Time { return s.lease.Add(s.cfg.Timeout - s.cfg.DriftMargin) }

// Remaining returns how long the session is certain to stay alive as seen at
// now: LeaseEnd - now, or zero if that has passed or the session is Lost.
// It does not depend on Tick having been called, so a lock holder can use it
// as a fencing check right before acting.
func (s *State) Remaining(now time.Time) time.Duration {
	if s.status == Lost {
		return 0
	}
	return max(0, s.LeaseEnd().Sub(now))
}

// Deadline returns the next time at which Tick will change the status if no
// acknowledgement arrives first: the suspend threshold while Connected, the
// lease end while Suspended, and the zero time once Lost.
func (s *State) Deadline() time.Time {
	switch s.status {
	case Connected:
		return s.lease.Add(s.cfg.SuspendAfter)
	case Suspended:
		return s.LeaseEnd()
	}
	return time.Time{}
}

// NextHeartbeat returns when the next heartbeat is due, never before now:
// HeartbeatInterval after the last send while Connected, SuspendedInterval
// after it while Suspended, and the zero time once Lost (no more heartbeats).
func (s *State) NextHeartbeat(now time.Time) time.Time {
	var next time.Time
	switch s.status {
	case Connected:
		next = s.lastSent.Add(s.cfg.HeartbeatInterval)
	case Suspended:
		next = s.lastSent.Add(s.cfg.SuspendedInterval)
	default:
		return time.Time{}
	}
	if next.Before(now) {
		return now
	}
	return next
}

// advance clamps now to be non-decreasing and applies the time rules.
func (s *State) advance(now time.Time) time.Time {
	if now.Before(s.lastNow) {
		now = s.lastNow
	}
	s.lastNow = now
	if s.status == Lost {
		return now
	}
	if end := s.LeaseEnd(); !now.Before(end) {
		if s.status == Connected {
			s.emit(EventSuspended, s.lease.Add(s.cfg.SuspendAfter), CauseNoAck)
		}
		s.status = Lost
		s.emit(EventLost, end, CauseTimeout)
		return now
	}
	if s.status == Connected && now.Sub(s.lease) >= s.cfg.SuspendAfter {
		s.status = Suspended
		s.emit(EventSuspended, s.lease.Add(s.cfg.SuspendAfter), CauseNoAck)
	}
	return now
}

func (s *State) emit(t EventType, at time.Time, c Cause) {
	s.events = append(s.events, Event{Type: t, At: at, Cause: c})
}
