// The recipes' part of TestChaos (issue 11): beside the KV clients, every
// child runs a recipe workload on its node, and the parent holds the
// resources the recipes protect.
//
// In each child (once the parent says "recstart"):
//
//   - two Lock holders and two Semaphore holders (3 leases: with 3 or 5
//     nodes there are 6 or 10 contenders), each on a session of its own,
//     acquire, act on the parent's resource inside their critical section,
//     and release;
//   - a candidate runs Election.Run and, while it leads, acts on the
//     parent's leader resource with its leadership's token; an observer
//     reports every change Election.Observe shows;
//   - a Config's value {n, by} is updated now and then with Config.Update
//     (n+1), and a subscriber reports every value the Config shows.
//
// An act is one round trip to the parent: an ACT line on stdout, answered
// "ok" or "refused: why" on stdin. A careful holder acts only while its
// lease is valid (Lease.Remaining > 0, so Done is open; for the leader:
// leaderCtx live and its session's Remaining > 0), checked right before a
// short pause (its work) and each act, so only a process stopped in that
// pause acts with a lease it no longer has. A careless holder (one of the
// two Lock and Semaphore holders, and the leader in half of its terms)
// checks only before it enters and then works on for a while whatever
// happens to its lease: the holder fencing is for. Nothing the children
// measure in time is compared across processes: the checks rest on tokens
// and on the order in which the parent handled acts.
//
// The parent's resources are fenced (chaosFence): one per recipe, each
// allowing n holders at once (1 for the Lock and the Election, 3 for the
// Semaphore). A holder enters with its token, does some work, exits. The
// resource refuses every act of a token it knows to be stale: a holder of
// token u proves, when it enters, that every contender created before it
// (a lower token) that it did not see in the queue was gone when it
// acquired. For a Lock or an Election that is every lower token (nobody is
// ahead of the holder), which is the classic rule (refuse tokens lower than
// the highest seen); a Semaphore holder sends the tokens of the
// contenders still ahead of it (at most n-1). A resource also refuses an
// enter while n live holders are inside.
//
// The checks:
//
//   - what each resource accepted: no act of a token already proven stale,
//     never more than n live holders inside (for the Lock and the Election:
//     accepted tokens never go down, and sections do not overlap), each
//     token one holder whose acts come enter, work..., exit;
//   - coord's side of the bargain: a holder the resource refused checks its
//     lease again after the answer; if it is still valid, coord had given
//     the lease to two holders (n+1 for the Semaphore) at once, since the
//     refusal rested on a holder that acquired after this one's node was
//     gone (a node never comes back). This is the check that fails if the
//     recipes or the session leases are wrong;
//   - the Election: one leader per token (the resource's enters and every
//     observer agree on the name behind each token), and each observer's
//     leaders' tokens never go down;
//   - the Config: a Config never shows an older value after a newer one
//     (Mzxid increases; the znode, never deleted, never disappears), every
//     value shown or written is a compare-and-set chain (n = version+1: no
//     lost update), no two acknowledged updates wrote the same version,
//     and after an acknowledged Update, Get shows it or a newer value;
//   - and that each recipe made progress, so no check is vacuous.
package coord_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

const (
	chaosEnvInc     = "COORD_CHAOS_INC"
	chaosEnvRecSeed = "COORD_CHAOS_RECSEED"

	chaosSemLeases = 3
	// chaosRecAcquire bounds one acquisition attempt.
	chaosRecAcquire = 5 * time.Second
)

// chaosRecMsg is a line from a child's recipe workload to the parent
// ("REC <json>").
type chaosRecMsg struct {
	// Type: "act" (answered), "post" (a refused holder's lease checked
	// after the answer), "obs" (an Observe change), "cfg" (a value a
	// Config showed), "upd" (an Update's outcome).
	Type   string  `json:"type"`
	ID     int64   `json:"id,omitempty"`
	Res    string  `json:"res,omitempty"`  // act, post: lock, sem, elect
	Kind   string  `json:"kind,omitempty"` // act, post: enter, work, exit
	Token  int64   `json:"token,omitempty"`
	Holder string  `json:"holder,omitempty"` // act, post: the holder; obs, cfg, upd: the observer or Config
	Snap   []int64 `json:"snap,omitempty"`   // sem enter: tokens of the contenders still ahead
	Valid  bool    `json:"valid,omitempty"`  // post
	Name   string  `json:"name,omitempty"`   // obs: the leader's name; cfg, upd: the value's writer
	Exists bool    `json:"exists,omitempty"`
	N      int64   `json:"n,omitempty"`
	Ver    int32   `json:"ver,omitempty"`
	Mzxid  int64   `json:"mzxid,omitempty"`
	Seen   int64   `json:"seen,omitempty"` // upd: the Mzxid Get showed right after
	Code   string  `json:"code,omitempty"` // upd: ok, unknown, fail
	Err    string  `json:"err,omitempty"`
}

// chaosCfgVal is the Config's value.
type chaosCfgVal struct {
	N  int64  `json:"n"`
	By string `json:"by"`
}

// ---------------------------------------------------------------------------
// Child side.

// chaosRec is a child's recipe workload.
type chaosRec struct {
	out  *procOut
	who  string // node id and incarnation: "n2.1"
	seed int64

	mu      sync.Mutex
	node    *coord.Node
	cancel  context.CancelFunc // of the running workload; nil if none
	nextID  int64
	pending map[int64]chan string
	wg      sync.WaitGroup
}

func newChaosRec(out *procOut, who string, seed int64) *chaosRec {
	return &chaosRec{out: out, who: who, seed: seed, pending: map[int64]chan string{}}
}

func (r *chaosRec) send(m chaosRecMsg) {
	b, _ := json.Marshal(m)
	r.out.line("REC %s", b)
}

// answer routes the parent's answer to an act.
func (r *chaosRec) answer(id int64, verdict string) {
	r.mu.Lock()
	ch := r.pending[id]
	delete(r.pending, id)
	r.mu.Unlock()
	if ch != nil {
		ch <- verdict
	}
}

// act asks the parent's resource to accept m; it returns the verdict
// ("ok" or "refused: ...") or ctx's error.
func (r *chaosRec) act(ctx context.Context, m chaosRecMsg) (string, error) {
	ch := make(chan string, 1)
	r.mu.Lock()
	r.nextID++
	m.ID = r.nextID
	r.pending[m.ID] = ch
	r.mu.Unlock()
	m.Type = "act"
	r.send(m)
	select {
	case v := <-ch:
		return v, nil
	case <-ctx.Done():
		r.mu.Lock()
		delete(r.pending, m.ID)
		r.mu.Unlock()
		return "", ctx.Err()
	}
}

// start runs the workload on node until stop or ctx ends.
func (r *chaosRec) start(ctx context.Context, node *coord.Node) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		return
	}
	ctx, r.cancel = context.WithCancel(ctx)
	r.node = node
	rng := rand.New(rand.NewSource(r.seed))
	seed := func() int64 { return rng.Int63() }
	workers := []func(context.Context, *rand.Rand){
		func(ctx context.Context, rng *rand.Rand) { r.holder(ctx, rng, "lock", 0, false) },
		func(ctx context.Context, rng *rand.Rand) { r.holder(ctx, rng, "lock", 1, true) },
		func(ctx context.Context, rng *rand.Rand) { r.holder(ctx, rng, "sem", 0, false) },
		func(ctx context.Context, rng *rand.Rand) { r.holder(ctx, rng, "sem", 1, true) },
		r.candidate,
		r.observer,
		r.config,
	}
	for _, w := range workers {
		r.wg.Add(1)
		go func(rng *rand.Rand) {
			defer r.wg.Done()
			w(ctx, rng)
		}(rand.New(rand.NewSource(seed())))
	}
}

// stop ends the workload (without waiting for it).
func (r *chaosRec) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		r.cancel()
	}
}

// chaosSessions is a SessionFactory of sessions of a node's own: the same
// one until it is Lost, then a new one.
type chaosSessions struct {
	node *coord.Node
	wg   *sync.WaitGroup

	mu sync.Mutex
	s  *coord.Session
}

func (f *chaosSessions) get(ctx context.Context) (*coord.Session, error) {
	f.mu.Lock()
	old := f.s
	f.mu.Unlock()
	if old != nil && old.State() != coord.SessionStateLost {
		return old, nil
	}
	s, err := f.node.Session(ctx, coord.SessionOptions{})
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.s = s
	f.mu.Unlock()
	if old != nil {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			old.Close(cctx)
		}()
	}
	return s, nil
}

// current is the session handed out last.
func (f *chaosSessions) current() *coord.Session {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s
}

func (f *chaosSessions) factory() recipes.SessionFactory {
	return func(ctx context.Context) (recipes.Session, error) { return f.get(ctx) }
}

// pause waits d or until ctx ends, reporting whether ctx is still live.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// section is one stay of a holder in the resource: enter, 1-3 works, exit,
// each act checked against valid right before a short pause (the work) and
// the act. A careless holder checks only before it enters, then works
// longer (2-5 acts, pauses up to 150ms; one time in four 6-12 acts, pauses
// up to 400ms, long enough for its session to expire under a fault)
// whatever happens to its lease: the holder fencing is for. It stops at the first refusal, reporting whether
// the lease was still valid after the answer.
func (r *chaosRec) section(ctx context.Context, rng *rand.Rand, res, holder string, token int64, snap []int64, valid func() bool, careless bool) {
	works, gap := 1+rng.Intn(3), 30
	switch {
	case careless && rng.Intn(4) == 0:
		works, gap = 6+rng.Intn(7), 400
	case careless:
		works, gap = 2+rng.Intn(4), 150
	}
	kinds := []string{"enter"}
	for range works {
		kinds = append(kinds, "work")
	}
	kinds = append(kinds, "exit")
	for i, kind := range kinds {
		if (i == 0 || !careless) && !valid() {
			return // the lease is gone: stop acting
		}
		if !pause(ctx, time.Duration(5+rng.Intn(gap))*time.Millisecond) {
			return
		}
		m := chaosRecMsg{Res: res, Kind: kind, Token: token, Holder: holder}
		if kind == "enter" {
			m.Snap = snap
		}
		verdict, err := r.act(ctx, m)
		if err != nil {
			return
		}
		if verdict != "ok" {
			r.send(chaosRecMsg{Type: "post", Res: res, Kind: kind, Token: token, Holder: holder, Valid: valid()})
			return
		}
	}
}

// holder takes the Lock (res "lock") or a Semaphore lease (res "sem") over
// and over, on a session of its own, and acts inside (see section).
func (r *chaosRec) holder(ctx context.Context, rng *rand.Rand, res string, k int, careless bool) {
	f := &chaosSessions{node: r.node, wg: &r.wg}
	dir := "/r/" + res
	for n := 0; ctx.Err() == nil; n++ {
		s, err := f.get(ctx)
		if err != nil {
			pause(ctx, 100*time.Millisecond)
			continue
		}
		holder := fmt.Sprintf("%s/%s%d#%d", r.who, res, k, n)
		actx, cancel := context.WithTimeout(ctx, chaosRecAcquire)
		var lease *recipes.Lease
		if res == "lock" {
			lease, err = recipes.NewLock(s, dir, []byte(holder)).Acquire(actx)
		} else {
			lease, err = recipes.NewSemaphore(s, dir, chaosSemLeases, []byte(holder)).Acquire(actx)
		}
		cancel()
		if err != nil {
			pause(ctx, time.Duration(20+rng.Intn(50))*time.Millisecond)
			continue
		}
		var snap []int64
		ok := true
		if res == "sem" {
			snap, ok = chaosAhead(ctx, s, dir, lease)
		}
		if ok {
			r.section(ctx, rng, res, holder, lease.Token(), snap, func() bool { return lease.Remaining() > 0 }, careless)
		}
		chaosRelease(ctx, s, lease)
		pause(ctx, time.Duration(rng.Intn(20))*time.Millisecond)
	}
}

// chaosRelease releases lease, again while its node could not be deleted
// (no quorum) and its session lives: a node left behind by a live session
// would block the queue for as long as the session lives.
func chaosRelease(ctx context.Context, s *coord.Session, lease *recipes.Lease) {
	for {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		err := lease.Release(rctx)
		cancel()
		if err == nil || errors.Is(err, recipes.ErrLeaseLost) || s.State() == coord.SessionStateLost ||
			!pause(ctx, 100*time.Millisecond) {
			return
		}
	}
}

// chaosAhead returns the tokens of the contenders ahead of lease (lower
// tokens) still in dir, read from the session's replica after the
// acquisition: every contender created before lease's and missing here was
// gone when it acquired.
func chaosAhead(ctx context.Context, s *coord.Session, dir string, lease *recipes.Lease) ([]int64, bool) {
	names, _, err := s.Children(ctx, dir)
	if err != nil {
		return nil, false
	}
	var ahead []int64
	for _, name := range names {
		st, ok, err := s.Exists(ctx, dir+"/"+name)
		if err != nil {
			return nil, false
		}
		if ok && st.Czxid < lease.Token() {
			ahead = append(ahead, st.Czxid)
		}
	}
	slices.Sort(ahead)
	return ahead, true
}

// candidate runs Election.Run; each time it leads it acts on the "elect"
// resource with its leadership's token, then returns to let the others lead.
// Half of its terms it is careless (see section): it acts on after
// leaderCtx ends.
func (r *chaosRec) candidate(ctx context.Context, rng *rand.Rand) {
	f := &chaosSessions{node: r.node, wg: &r.wg}
	e := recipes.NewElection(f.factory(), "/r/elect", r.who)
	for ctx.Err() == nil {
		err := e.Run(ctx, nil, func(lctx context.Context) error {
			// Run campaigned with the session the factory handed out last.
			s := f.current()
			valid := func() bool { return lctx.Err() == nil && s != nil && s.Remaining() > 0 }
			// Run does not tell fn its token: the leader's, as this
			// replica has it, is this candidate's while it leads. If the
			// name is another's, this candidate no longer leads and its
			// lease is no longer valid (or coord let two lead: then acting
			// with the other's token is what the checks catch).
			l, err := e.Leader(lctx)
			if err != nil {
				return nil
			}
			if rng.Intn(2) == 0 {
				r.section(ctx, rng, "elect", r.who, l.Token, nil, valid, true)
			} else {
				r.section(lctx, rng, "elect", r.who, l.Token, nil, valid, false)
			}
			return nil
		})
		if err != nil && ctx.Err() == nil {
			pause(ctx, 100*time.Millisecond)
		}
	}
}

// observer reports every leader change Election.Observe shows.
func (r *chaosRec) observer(ctx context.Context, _ *rand.Rand) {
	e := recipes.NewElection(recipes.NodeSessions(r.node), "/r/elect", r.who+"-observer")
	for ctx.Err() == nil {
		for l := range e.Observe(ctx) {
			r.send(chaosRecMsg{Type: "obs", Holder: r.who, Token: l.Token, Name: l.Name})
		}
		pause(ctx, 100*time.Millisecond)
	}
}

// config updates the Config's value now and then and reports every value
// it shows.
func (r *chaosRec) config(ctx context.Context, rng *rand.Rand) {
	var cfg *recipes.Config[chaosCfgVal]
	for cfg == nil {
		cctx, cancel := context.WithTimeout(ctx, chaosRecAcquire)
		c, err := recipes.NewConfig[chaosCfgVal](cctx, recipes.NodeSessions(r.node), "/r/cfg", recipes.ConfigOptions[chaosCfgVal]{})
		cancel()
		if err != nil {
			if !pause(ctx, 100*time.Millisecond) {
				return
			}
			continue
		}
		cfg = c
	}
	defer cfg.Close()
	vals, unsubscribe := cfg.Subscribe()
	defer unsubscribe()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for v := range vals {
			m := chaosRecMsg{Type: "cfg", Holder: r.who, Exists: v.Exists, N: v.V.N, Name: v.V.By,
				Ver: v.Stat.Version, Mzxid: v.Stat.Mzxid}
			if v.Err != nil {
				m.Err = v.Err.Error()
			}
			r.send(m)
		}
	}()
	for pause(ctx, time.Duration(50+rng.Intn(200))*time.Millisecond) {
		uctx, cancel := context.WithTimeout(ctx, chaosOpTimeout)
		v, st, err := cfg.Update(uctx, func(old chaosCfgVal) (chaosCfgVal, error) {
			return chaosCfgVal{N: old.N + 1, By: r.who}, nil
		})
		cancel()
		m := chaosRecMsg{Type: "upd", Holder: r.who, Code: "ok"}
		switch {
		case err == nil:
			m.N, m.Name, m.Ver, m.Mzxid = v.N, v.By, st.Version, st.Mzxid
			m.Seen = cfg.Get().Stat.Mzxid
		case errors.Is(err, coord.ErrOutcomeUnknown):
			m.Code, m.Err = "unknown", err.Error()
		default:
			m.Code, m.Err = "fail", err.Error()
		}
		if ctx.Err() != nil && err != nil {
			return
		}
		r.send(m)
	}
}

// ---------------------------------------------------------------------------
// Parent side: the fenced resources.

// chaosProofs are what holders proved about stale tokens: a holder of
// token u that saw only the tokens ahead (of those lower than u) in its
// queue proves every other lower token's node gone. Kept sorted by u.
type chaosProofs []chaosProof

type chaosProof struct {
	u     int64
	ahead []int64
	by    string
}

func (ps *chaosProofs) add(p chaosProof) {
	i, _ := slices.BinarySearchFunc(*ps, p.u, func(q chaosProof, u int64) int {
		switch {
		case q.u < u:
			return -1
		case q.u > u:
			return 1
		}
		return 0
	})
	*ps = slices.Insert(*ps, i, p)
}

// stale returns a proof that token t is stale, if there is one.
func (ps chaosProofs) stale(t int64) (chaosProof, bool) {
	i, _ := slices.BinarySearchFunc(ps, t+1, func(q chaosProof, u int64) int {
		if q.u < u {
			return -1
		}
		return 1
	})
	for _, p := range ps[i:] {
		if !slices.Contains(p.ahead, t) {
			return p, true
		}
	}
	return chaosProof{}, false
}

// chaosFence is one fenced resource of the parent.
type chaosFence struct {
	name   string
	n      int              // holders allowed inside at once
	inside map[int64]string // token -> holder, entered and not exited
	proofs chaosProofs
	log    []chaosFenced // every act, in the order handled
	posts  []chaosRecMsg // refused holders' lease checks
}

// chaosFenced is one act as the resource handled it.
type chaosFenced struct {
	at       int64 // since the cluster was made
	m        chaosRecMsg
	accepted bool
	why      string
}

func newChaosFence(name string, n int) *chaosFence {
	return &chaosFence{name: name, n: n, inside: map[int64]string{}}
}

// handle decides on one act.
func (f *chaosFence) handle(at int64, m chaosRecMsg) (bool, string) {
	if m.Kind == "enter" {
		ahead := m.Snap
		if f.n == 1 {
			ahead = nil // a lock's holder has nobody ahead
		}
		f.proofs.add(chaosProof{u: m.Token, ahead: ahead, by: m.Holder})
	}
	ok, why := f.decide(m)
	f.log = append(f.log, chaosFenced{at: at, m: m, accepted: ok, why: why})
	return ok, why
}

func (f *chaosFence) decide(m chaosRecMsg) (bool, string) {
	if p, ok := f.proofs.stale(m.Token); ok {
		return false, fmt.Sprintf("stale: %s holds token %d and saw no %d ahead", p.by, p.u, m.Token)
	}
	h, in := f.inside[m.Token]
	switch m.Kind {
	case "enter":
		if in {
			return false, fmt.Sprintf("token %d already inside (%s)", m.Token, h)
		}
		for t := range f.inside {
			if _, ok := f.proofs.stale(t); ok {
				delete(f.inside, t)
			}
		}
		if len(f.inside) >= f.n {
			return false, fmt.Sprintf("full: %d inside", len(f.inside))
		}
		f.inside[m.Token] = m.Holder
	case "work", "exit":
		if !in || h != m.Holder {
			return false, fmt.Sprintf("token %d is not inside", m.Token)
		}
		if m.Kind == "exit" {
			delete(f.inside, m.Token)
		}
	default:
		return false, "unknown act " + m.Kind
	}
	return true, ""
}

// check verifies what the resource accepted, from its log alone: no act of
// a token already proven stale, at most n live holders inside, and each
// token one holder whose acts go enter, work..., exit.
func (f *chaosFence) check() []string {
	var errs []string
	var proofs chaosProofs
	type sec struct {
		holder string
		state  string // last accepted act
	}
	secs := map[int64]*sec{}
	live := map[int64]bool{}
	var last int64
	owner := map[int64]string{}
	for _, e := range f.log {
		m := e.m
		if o, ok := owner[m.Token]; ok && o != m.Holder {
			errs = append(errs, fmt.Sprintf("%s: token %d is %s's and %s's", f.name, m.Token, o, m.Holder))
		}
		owner[m.Token] = m.Holder
		if m.Kind == "enter" {
			ahead := m.Snap
			if f.n == 1 {
				ahead = nil
			}
			proofs.add(chaosProof{u: m.Token, ahead: ahead, by: m.Holder})
		}
		if !e.accepted {
			continue
		}
		where := fmt.Sprintf("%s: at %.3fs %s %s token %d", f.name, time.Duration(e.at).Seconds(), m.Holder, m.Kind, m.Token)
		if p, ok := proofs.stale(m.Token); ok {
			errs = append(errs, fmt.Sprintf("%s accepted, but %s (token %d) had proven it stale", where, p.by, p.u))
		}
		if f.n == 1 && m.Token < last {
			errs = append(errs, fmt.Sprintf("%s accepted after token %d", where, last))
		}
		last = max(last, m.Token)
		s := secs[m.Token]
		switch {
		case s == nil && m.Kind != "enter":
			errs = append(errs, where+" accepted without an accepted enter")
		case s != nil && s.holder != m.Holder:
			errs = append(errs, fmt.Sprintf("%s accepted: the token is %s's", where, s.holder))
		case s != nil && (m.Kind == "enter" || s.state == "exit"):
			errs = append(errs, fmt.Sprintf("%s accepted after its %s", where, s.state))
		}
		if s == nil {
			s = &sec{holder: m.Holder}
			secs[m.Token] = s
		}
		s.state = m.Kind
		switch m.Kind {
		case "enter":
			live[m.Token] = true
			for t := range live {
				if _, ok := proofs.stale(t); ok {
					delete(live, t)
				}
			}
			if len(live) > f.n {
				errs = append(errs, fmt.Sprintf("%s accepted with %d holders inside: %v", where, len(live), slices.Sorted(maps.Keys(live))))
			}
		case "exit":
			delete(live, m.Token)
		}
	}
	// coord's side: a refused holder whose lease was still valid after the
	// refusal shared its lease with the holder that made it stale (or with
	// n others inside).
	for _, p := range f.posts {
		if p.Valid {
			errs = append(errs, fmt.Sprintf("%s: %s (token %d) was refused its %s, yet its lease was still valid after the answer: coord let more than %d hold at once",
				f.name, p.Holder, p.Token, p.Kind, f.n))
		}
	}
	errs = capErrs(f.name, errs)
	if len(errs) > 0 {
		errs = append(errs, f.name+" history (the last acts):\n"+f.tail(40))
	}
	return errs
}

// tail describes the last k acts the resource handled.
func (f *chaosFence) tail(k int) string {
	var b strings.Builder
	for _, e := range f.log[max(0, len(f.log)-k):] {
		v := "accepted"
		if !e.accepted {
			v = "refused (" + e.why + ")"
		}
		fmt.Fprintf(&b, "  %8.3fs %s %s token %d snap %v: %s\n", time.Duration(e.at).Seconds(), e.m.Holder, e.m.Kind, e.m.Token, e.m.Snap, v)
	}
	return b.String()
}

// chaosRecipes is the parent's side of the recipe workload.
type chaosRecipes struct {
	mu      sync.Mutex
	running bool // children started since get "recstart"
	fences  map[string]*chaosFence
	obs     map[string][]chaosRecMsg // per observer
	cfgs    map[string][]chaosRecMsg // values shown, per Config
	upds    []chaosRecMsg
	bad     []string // malformed lines
}

func newChaosRecipes() *chaosRecipes {
	return &chaosRecipes{
		fences: map[string]*chaosFence{
			"lock":  newChaosFence("lock", 1),
			"sem":   newChaosFence("sem", chaosSemLeases),
			"elect": newChaosFence("elect", 1),
		},
		obs:  map[string][]chaosRecMsg{},
		cfgs: map[string][]chaosRecMsg{},
	}
}

// line handles a REC line of a child; for an act it returns the answer.
func (rc *chaosRecipes) line(at int64, node int, rest string) (id int64, verdict string, answer bool) {
	var m chaosRecMsg
	if err := json.Unmarshal([]byte(rest), &m); err != nil {
		rc.mu.Lock()
		rc.bad = append(rc.bad, fmt.Sprintf("node %d: %q: %v", node, rest, err))
		rc.mu.Unlock()
		return 0, "", false
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	switch m.Type {
	case "act", "post":
		f := rc.fences[m.Res]
		if f == nil {
			rc.bad = append(rc.bad, fmt.Sprintf("node %d: unknown resource in %q", node, rest))
			return m.ID, "refused: unknown resource", m.Type == "act"
		}
		if m.Type == "post" {
			f.posts = append(f.posts, m)
			return 0, "", false
		}
		ok, why := f.handle(at, m)
		if ok {
			return m.ID, "ok", true
		}
		return m.ID, "refused: " + why, true
	case "obs":
		rc.obs[m.Holder] = append(rc.obs[m.Holder], m)
	case "cfg":
		rc.cfgs[m.Holder] = append(rc.cfgs[m.Holder], m)
	case "upd":
		rc.upds = append(rc.upds, m)
	default:
		rc.bad = append(rc.bad, fmt.Sprintf("node %d: unknown type in %q", node, rest))
	}
	return 0, "", false
}

// progressed reports whether every recipe made the progress check asks
// for (so no check is vacuous): a completed section of each fenced
// resource and an acknowledged Config update.
func (rc *chaosRecipes) progressed() bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, f := range rc.fences {
		if !slices.ContainsFunc(f.log, func(e chaosFenced) bool { return e.accepted && e.m.Kind == "exit" }) {
			return false
		}
	}
	return slices.ContainsFunc(rc.upds, func(u chaosRecMsg) bool { return u.Code == "ok" })
}

// check runs every recipe check and returns the failures and a summary.
func (rc *chaosRecipes) check() (errs []string, summary string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	errs = append(errs, rc.bad...)
	var sum []string
	for _, name := range []string{"lock", "sem", "elect"} {
		f := rc.fences[name]
		errs = append(errs, f.check()...)
		sections, done, refused, stale := 0, 0, 0, 0
		for _, e := range f.log {
			switch {
			case e.accepted && e.m.Kind == "enter":
				sections++
			case e.accepted && e.m.Kind == "exit":
				done++
			case !e.accepted:
				refused++
				if strings.HasPrefix(e.why, "stale") {
					stale++
				}
			}
		}
		if done == 0 {
			errs = append(errs, name+": no holder completed a section: the check is vacuous")
		}
		sum = append(sum, fmt.Sprintf("%s %d sections (%d completed), %d acts refused (%d stale)", name, sections, done, refused, stale))
	}
	e, s := rc.checkElection()
	errs, sum = append(errs, capErrs("election", e)...), append(sum, s)
	e, s = rc.checkConfig()
	errs, sum = append(errs, capErrs("config", e)...), append(sum, s)
	return errs, strings.Join(sum, "; ")
}

// capErrs keeps the first 10 of errs.
func capErrs(what string, errs []string) []string {
	if len(errs) > 10 {
		errs = append(errs[:10], fmt.Sprintf("%s: %d more failures", what, len(errs)-10))
	}
	return errs
}

// checkElection: one leader per token (the leader resource's enters and
// every observer agree on the name behind each token), and each
// observer's tokens never go down.
func (rc *chaosRecipes) checkElection() (errs []string, summary string) {
	type claim struct{ name, by string }
	leaderOf := map[int64]claim{}
	conflicts := map[int64]bool{}
	add := func(token int64, name, by string) {
		if token == 0 {
			return
		}
		c, ok := leaderOf[token]
		if !ok {
			leaderOf[token] = claim{name, by}
			return
		}
		if c.name != name && !conflicts[token] {
			conflicts[token] = true
			errs = append(errs, fmt.Sprintf("election: token %d led by %s (%s) and by %s (%s)", token, c.name, c.by, name, by))
		}
	}
	for _, e := range rc.fences["elect"].log {
		if e.m.Kind == "enter" {
			add(e.m.Token, e.m.Holder, "its enter")
		}
	}
	changes := 0
	for _, who := range slices.Sorted(maps.Keys(rc.obs)) {
		var last int64
		for _, o := range rc.obs[who] {
			changes++
			add(o.Token, o.Name, "observer "+who)
			if o.Token != 0 && o.Token < last {
				errs = append(errs, fmt.Sprintf("election: observer %s saw token %d (%s) after token %d", who, o.Token, o.Name, last))
			}
			last = max(last, o.Token)
		}
	}
	return errs, fmt.Sprintf("election: %d leaders' tokens, %d changes observed", len(leaderOf), changes)
}

// checkConfig: a Config never shows an older value after a newer one,
// every value shown or written is n = version+1, no two acknowledged
// updates wrote one version, and Get shows an acknowledged update at once.
func (rc *chaosRecipes) checkConfig() (errs []string, summary string) {
	shown, maxN := 0, int64(0)
	chain := func(m chaosRecMsg, what string) {
		if m.Err != "" {
			errs = append(errs, fmt.Sprintf("config: %s %s: %s", m.Holder, what, m.Err))
		} else if m.N != int64(m.Ver)+1 {
			errs = append(errs, fmt.Sprintf("config: %s %s n=%d at version %d (by %s): an update was lost or made twice", m.Holder, what, m.N, m.Ver, m.Name))
		}
		maxN = max(maxN, m.N)
	}
	for _, who := range slices.Sorted(maps.Keys(rc.cfgs)) {
		var prev chaosRecMsg
		for _, v := range rc.cfgs[who] {
			shown++
			switch {
			case !v.Exists && prev.Exists:
				errs = append(errs, fmt.Sprintf("config: %s showed no value after version %d (the znode is never deleted)", who, prev.Ver))
			case !v.Exists:
			case prev.Exists && v.Mzxid < prev.Mzxid:
				errs = append(errs, fmt.Sprintf("config: %s went back: version %d (mzxid %#x, n=%d) after version %d (mzxid %#x, n=%d)",
					who, v.Ver, v.Mzxid, v.N, prev.Ver, prev.Mzxid, prev.N))
			case prev.Exists && v.Mzxid == prev.Mzxid:
				errs = append(errs, fmt.Sprintf("config: %s showed version %d (mzxid %#x) twice: Subscribe sends only newer values", who, v.Ver, v.Mzxid))
			}
			if v.Exists {
				chain(v, "showed")
			}
			prev = v
		}
	}
	acked, unknown, failed := 0, 0, 0
	wrote := map[int32]string{}
	for _, u := range rc.upds {
		switch u.Code {
		case "ok":
			acked++
			chain(u, "wrote")
			if w, ok := wrote[u.Ver]; ok {
				errs = append(errs, fmt.Sprintf("config: %s and %s both wrote version %d", w, u.Holder, u.Ver))
			}
			wrote[u.Ver] = u.Holder
			if u.Seen < u.Mzxid {
				errs = append(errs, fmt.Sprintf("config: %s's Get showed mzxid %#x right after its update (mzxid %#x) returned", u.Holder, u.Seen, u.Mzxid))
			}
		case "unknown":
			unknown++
		default:
			failed++
		}
	}
	if acked == 0 {
		errs = append(errs, "config: no update acknowledged: the check is vacuous")
	}
	return errs, fmt.Sprintf("config: %d updates acknowledged (%d unknown, %d failed), %d values shown, n up to %d", acked, unknown, failed, shown, maxN)
}

// recipesStart starts the workload in every running child and in those
// that get ready later.
func (c *chaosCluster) recipesStart() {
	c.rec.mu.Lock()
	c.rec.running = true
	c.rec.mu.Unlock()
	for id := 1; id <= c.n; id++ {
		c.send(c.ready(id), chaosReq{Op: "recstart"})
	}
}

// recipesStop stops the workload in every child.
func (c *chaosCluster) recipesStop() {
	c.rec.mu.Lock()
	c.rec.running = false
	c.rec.mu.Unlock()
	for id := 1; id <= c.n; id++ {
		c.mu.Lock()
		p := c.procs[id-1]
		c.mu.Unlock()
		c.send(p, chaosReq{Op: "recstop"})
	}
}

// send writes r to p's stdin without waiting for an answer.
func (c *chaosCluster) send(p *chaosProc, r chaosReq) {
	if p == nil {
		return
	}
	b, _ := json.Marshal(r)
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.stdin.Write(append(b, '\n'))
}

// checkRecipes fails t on every recipe check that fails and logs the
// figures.
func (c *chaosCluster) checkRecipes(t *testing.T) {
	t.Helper()
	errs, summary := c.rec.check()
	for _, e := range errs {
		t.Error(e)
	}
	t.Logf("recipes: %s", summary)
}
