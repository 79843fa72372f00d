package coord

import (
	"fmt"

	"github.com/coord-dev/coord/session"
)

// SessionState is the owner's view of a session, as Session.State reports
// it. A session starts Connected, may go back and forth between Connected
// and Suspended, and ends Lost.
type SessionState uint8

// The session states.
const (
	// SessionStateConnected: the leader acknowledged a recent heartbeat;
	// the session is safely alive.
	SessionStateConnected SessionState = iota + 1
	// SessionStateSuspended: no recent heartbeat was acknowledged (the
	// leader or the quorum may be lost). The session may still be alive,
	// but anything that relies on it (a lock, a leadership) must stop
	// acting until it is Connected again.
	SessionStateSuspended
	// SessionStateLost: the session timeout has passed since the newest
	// acknowledged heartbeat, or the leader said the session is gone. It is
	// terminal: its ephemerals are gone or going, and a new session is
	// needed.
	SessionStateLost
)

// String returns the state's name: Connected, Suspended or Lost.
func (s SessionState) String() string {
	switch s {
	case SessionStateConnected:
		return "Connected"
	case SessionStateSuspended:
		return "Suspended"
	case SessionStateLost:
		return "Lost"
	}
	return fmt.Sprintf("SessionState(%d)", uint8(s))
}

// sessionStateOf maps the session package's status to coord's state.
func sessionStateOf(st session.Status) SessionState {
	switch st {
	case session.Connected:
		return SessionStateConnected
	case session.Suspended:
		return SessionStateSuspended
	case session.Lost:
		return SessionStateLost
	}
	return 0
}
