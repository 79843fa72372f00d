// Package lockcore is the queue protocol the lock recipes share (Lock,
// RWLock, Semaphore, MultiLock, Election), as a deterministic core in the
// shape of zab.Peer and session.Replica: no blocking, no goroutines, no
// clock. A Core is one acquisition. Step takes the answer to the action it
// asked for last and returns the next action; a driver executes each
// action and feeds its answer back. recipes drives it through a
// *coord.Session (blocking on each call), internal/sim through the
// simulated tree and sessions on virtual time, so the simulator checks the
// protocol that ships.
//
// The protocol: each contender is an ephemeral sequential node under a
// directory, and contenders are ordered by their sequence numbers, which
// the parent hands out in creation (zxid) order whatever the name's
// prefix. A contender reads the queue from its own node's replica, which
// has applied its create and so every create before it: it can only see
// more contenders ahead of it than there are (deletes not applied yet),
// never fewer, so deciding from that view is safe. A Rule decides from the
// queue whether the contender holds or what it waits on (one contender
// ahead of it with ExistsW, or the whole directory). The token of a held
// lease is the zxid that created its node. A contender that gives up is
// deleted.
package lockcore

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/coord-dev/coord/coord"
)

// ErrLeaseLost is what recipes.ErrLeaseLost is: the session was Suspended
// or lost while the lease was held or being acquired, or the contender
// vanished.
var ErrLeaseLost = errors.New("recipes: lease lost with its session")

// SeqDigits is the width of the sequence suffix (ZooKeeper's %010d).
const SeqDigits = 10

// Contender is one node of a queue, ordered by Seq.
type Contender struct {
	Name string
	Seq  int64
}

// SeqOf parses the sequence suffix of a contender's name.
func SeqOf(name string) (int64, bool) {
	if len(name) < SeqDigits {
		return 0, false
	}
	n, err := strconv.ParseInt(name[len(name)-SeqDigits:], 10, 64)
	return n, err == nil && n >= 0
}

// Contenders returns the names among names that carry one of prefixes and
// a sequence suffix, in queue order.
func Contenders(names []string, prefixes ...string) []Contender {
	var q []Contender
	for _, n := range names {
		for _, p := range prefixes {
			if strings.HasPrefix(n, p) && len(n) == len(p)+SeqDigits {
				if seq, ok := SeqOf(n); ok {
					q = append(q, Contender{Name: n, Seq: seq})
				}
				break
			}
		}
	}
	slices.SortFunc(q, func(a, b Contender) int { return cmp.Compare(a.Seq, b.Seq) })
	return q
}

// Decision is what a contender does next: hold, watch one contender ahead
// of it (Watch, its name), or watch the whole directory (Children).
type Decision struct {
	Held     bool
	Watch    string
	Children bool
}

// Rule decides from the queue and this contender's index in it.
type Rule func(q []Contender, me int) Decision

// Mutex holds the first place; the others watch the one just ahead.
func Mutex(q []Contender, me int) Decision {
	if me == 0 {
		return Decision{Held: true}
	}
	return Decision{Watch: q[me-1].Name}
}

// Ancestors returns dir's ancestors and dir itself, shortest first
// ("/a/b" gives "/a", "/a/b"): the containers to create for it.
func Ancestors(dir string) []string {
	var ps []string
	for i := 1; i <= len(dir); i++ {
		if i == len(dir) || dir[i] == '/' {
			ps = append(ps, dir[:i])
		}
	}
	return ps
}

// Mode is how an acquisition treats its session's Connected period (the
// lease rests on one period: its Done is the session's Suspended channel
// of that period).
type Mode uint8

const (
	// Wait waits until the rule lets the contender hold; it starts by
	// waiting for a Connected period (Connect), and a suspension while it
	// waits is waited out: the wait goes on once the session is Connected
	// again, and fails if it is lost.
	Wait Mode = iota
	// Fixed is Wait on the period the caller holds already (MultiLock):
	// the end of that period fails the acquisition with ErrLeaseLost.
	Fixed
	// Try holds only if the rule lets the new contender hold at once,
	// and otherwise gives up (Failed with a nil Err).
	Try
)

// Config describes one acquisition.
type Config struct {
	// Dir is the queue's directory, without a trailing slash.
	Dir string
	// Prefix names this contender's node (Dir/Prefix + sequence).
	Prefix string
	// Prefixes are every prefix the recipe's contenders use.
	Prefixes []string
	// Children lists the queue with a child watch, for a rule that may
	// wait on the whole directory.
	Children bool
	Rule     Rule
	Mode     Mode
}

// Kind is the kind of an action.
type Kind uint8

const (
	// Connect: wait until the session is Connected and answer, with Err
	// if it is lost or closed or the caller gave up. A new period starts:
	// Broken answers refer to it from then on.
	Connect Kind = iota + 1
	// Create: create Path (the directory and this contender's prefix) as
	// an ephemeral sequential node; answer its Path or Err. The create
	// runs to its outcome whatever the caller does (bounded by a cleanup
	// time): abandoned in flight, it could leave a contender nobody knows
	// of.
	Create
	// CreateDir: create Path as a container (an ancestor of the
	// directory); answer Err.
	CreateDir
	// List: read the children of Path (the directory) from the session's
	// replica, with a child watch if Watch (it replaces the watch held);
	// answer Names or Err.
	List
	// ExistsW: read whether Path exists with a data watch (it replaces the
	// watch held); answer Exists or Err.
	ExistsW
	// Exists: read Path's stat; answer Exists and Czxid, or Err.
	Exists
	// Block: wait until the watch held fires, the period ends or the
	// caller gives up; answer Woke (with Err the caller's error for
	// Cancelled).
	Block
	// Delete: delete Path (any version) through the session, with a fresh
	// deadline since the caller's may be what ended; answer anything.
	Delete
	// Held: done, the contender holds; Path and Token are its lease's.
	Held
	// Failed: done, the acquisition failed with Err (nil for Try: not
	// held now). No contender of it is left in the queue, except one whose
	// create had an unknown outcome.
	Failed
)

// Action is what the driver does next.
type Action struct {
	// Unwatch: first remove the watch the last List or ExistsW set, if it
	// has not fired.
	Unwatch bool
	Kind    Kind
	Path    string
	Watch   bool  // List: with a child watch
	Token   int64 // Held
	Err     error // Failed
}

// Wake is why a Block ended.
type Wake uint8

const (
	// Fired: the watch fired.
	Fired Wake = iota + 1
	// Broken: the period ended (the lease's Done closed).
	Broken
	// Cancelled: the caller gave up (Err says why).
	Cancelled
)

// Answer is the outcome of the last action, and what the driver observes
// as it hands it over.
type Answer struct {
	Err    error
	Path   string   // Create
	Names  []string // List
	Exists bool     // ExistsW, Exists
	Czxid  int64    // Exists
	Woke   Wake     // Block
	// Broken: the period the lease rests on has ended (the session's
	// Suspended channel of that period is closed), now.
	Broken bool
	// CtxErr: the caller gave up (its context's Err), now.
	CtxErr error
}

type phase uint8

const (
	start phase = iota
	connecting
	creating
	creatingDir
	listing
	watching
	reading
	blocking
	leaving
	done
)

// Core is one acquisition of a queue.
type Core struct {
	cfg     Config
	ph      phase
	path    string // this contender's node, once created
	dirs    []string
	unwatch bool  // remove the watch before the next action
	err     error // the failure reported once the contender left
	last    Action
}

// New returns the core of one acquisition; its first Step takes an Answer
// with only Broken and CtxErr (the state when the caller started).
func New(cfg Config) *Core { return &Core{cfg: cfg} }

// Path is the contender's node, once its create succeeded.
func (c *Core) Path() string { return c.path }

// Step takes the answer to the last action and returns the next one. After
// Held or Failed it keeps returning that action.
func (c *Core) Step(a Answer) Action {
	if c.ph == done {
		return c.last
	}
	act := c.step(a)
	act.Unwatch, c.unwatch = c.unwatch, false
	if c.ph == done {
		c.last = act
	}
	return act
}

func (c *Core) step(a Answer) Action {
	switch c.ph {
	case start:
		if c.cfg.Mode == Wait {
			c.ph = connecting
			return Action{Kind: Connect}
		}
		if a.Broken {
			return c.fail(fmt.Errorf("%w: the session is not connected", ErrLeaseLost))
		}
		return c.create(a)
	case connecting:
		if a.Err != nil {
			return c.fail(a.Err)
		}
		if c.path == "" {
			return c.create(a)
		}
		return c.list()
	case creating:
		switch {
		case a.Err == nil && a.CtxErr != nil:
			c.path = a.Path
			return c.fail(a.CtxErr)
		case a.Err == nil:
			c.path = a.Path
			if c.cfg.Mode == Try {
				c.ph = listing
				return Action{Kind: List, Path: c.cfg.Dir}
			}
			return c.loop(a)
		case errors.Is(a.Err, coord.ErrNoNode):
			c.dirs = Ancestors(c.cfg.Dir)
			return c.createDir()
		default:
			return c.fail(a.Err)
		}
	case creatingDir:
		if a.Err != nil && !errors.Is(a.Err, coord.ErrNodeExists) {
			return c.fail(fmt.Errorf("recipes: queue dir %s: %w", c.cfg.Dir, a.Err))
		}
		if len(c.dirs) > 0 {
			return c.createDir()
		}
		return c.create(a)
	case listing:
		return c.listed(a)
	case watching:
		switch {
		case a.Err != nil:
			return c.fail(a.Err)
		case !a.Exists:
			c.unwatch = true // it left between the two reads
			return c.loop(a)
		}
		c.ph = blocking
		return Action{Kind: Block}
	case reading:
		switch {
		case a.Err != nil:
			return c.fail(a.Err)
		case !a.Exists:
			return c.fail(fmt.Errorf("%w: contender %s vanished", ErrLeaseLost, c.path))
		case c.cfg.Mode == Try || !a.Broken:
			c.ph = done
			return Action{Kind: Held, Path: c.path, Token: a.Czxid}
		}
		return c.loop(a) // Suspended during the check: check again once Connected
	case blocking:
		switch a.Woke {
		case Fired:
		case Cancelled:
			c.unwatch = true
			return c.fail(a.Err)
		default:
			c.unwatch = true
			a.Broken = true
		}
		return c.loop(a)
	}
	// leaving
	c.ph = done
	return Action{Kind: Failed, Err: c.err}
}

// create enqueues the contender, unless the caller gave up.
func (c *Core) create(a Answer) Action {
	if a.CtxErr != nil {
		return c.fail(a.CtxErr)
	}
	c.ph = creating
	return Action{Kind: Create, Path: c.cfg.Dir + "/" + c.cfg.Prefix}
}

func (c *Core) createDir() Action {
	c.ph = creatingDir
	p := c.dirs[0]
	c.dirs = c.dirs[1:]
	return Action{Kind: CreateDir, Path: p}
}

// loop is the top of the wait: a period that ended is waited out (or fails
// a Fixed acquisition), then the queue is read again.
func (c *Core) loop(a Answer) Action {
	if a.Broken {
		if c.cfg.Mode == Fixed {
			return c.fail(ErrLeaseLost)
		}
		c.ph = connecting
		return Action{Kind: Connect}
	}
	return c.list()
}

func (c *Core) list() Action {
	c.ph = listing
	return Action{Kind: List, Path: c.cfg.Dir, Watch: c.cfg.Children}
}

// listed decides from a listing of the directory.
func (c *Core) listed(a Answer) Action {
	if a.Err != nil {
		return c.fail(a.Err)
	}
	q := Contenders(a.Names, c.cfg.Prefixes...)
	mine := c.path[strings.LastIndexByte(c.path, '/')+1:]
	me := slices.IndexFunc(q, func(x Contender) bool { return x.Name == mine })
	if me < 0 {
		c.unwatch = c.cfg.Children && c.cfg.Mode != Try
		return c.fail(fmt.Errorf("%w: contender %s vanished", ErrLeaseLost, c.path))
	}
	d := c.cfg.Rule(q, me)
	if c.cfg.Mode == Try {
		if !d.Held {
			return c.fail(nil)
		}
		c.ph = reading
		return Action{Kind: Exists, Path: c.path}
	}
	if c.cfg.Children && !d.Children {
		c.unwatch = true
	}
	switch {
	case d.Held:
		c.ph = reading
		return Action{Kind: Exists, Path: c.path}
	case !d.Children:
		c.ph = watching
		return Action{Kind: ExistsW, Path: c.cfg.Dir + "/" + d.Watch}
	}
	c.ph = blocking
	return Action{Kind: Block}
}

// fail leaves the queue (if the contender was created) and then reports
// err.
func (c *Core) fail(err error) Action {
	c.err = err
	if c.path == "" {
		c.ph = done
		return Action{Kind: Failed, Err: err}
	}
	c.ph = leaving
	return Action{Kind: Delete, Path: c.path}
}
