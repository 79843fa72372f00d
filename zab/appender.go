package zab

import (
	"errors"
	"sync"
)

// errAppenderStopped fails the appends started after the node stopped.
var errAppenderStopped = errors.New("zab: log writer stopped")

// appender writes the log of Async Readys on a goroutine of its own, so
// the driver goes on stepping (a leader takes in acknowledgements and
// proposes the next batch, a follower applies what was committed) while
// the fsync runs, and sends their acknowledgements after it. Appends
// started while a write is under way wait for it and then go together, in
// one write and one fsync. It is the AsyncLog of a Node with a data
// directory; the MemoryStorage the core reads is written at once, on the
// driver.
type appender struct {
	nodeLog
	send func(Message) error

	mu      sync.Mutex
	cond    *sync.Cond // signalled when a write ends
	queue   []Entry    // started, not yet being written
	then    []Message  // to send once queue is durable
	writing bool
	durable Zxid  // the last zxid written and fsynced since the last Flush (0: none)
	err     error // the write that failed: nothing is written after it
	stopped bool

	wake   chan struct{} // cap 1: the queue has entries, or stop
	notify chan struct{} // cap 1: durable or err moved (to the driver)
	exited chan struct{}
}

func newAppender(l nodeLog, send func(Message) error) *appender {
	a := &appender{nodeLog: l, send: send, wake: make(chan struct{}, 1), notify: make(chan struct{}, 1),
		exited: make(chan struct{})}
	a.cond = sync.NewCond(&a.mu)
	go a.run()
	return a
}

func (a *appender) run() {
	defer close(a.exited)
	for range a.wake {
		for {
			a.mu.Lock()
			if a.stopped || a.err != nil || len(a.queue)+len(a.then) == 0 {
				stop := a.stopped
				a.mu.Unlock()
				if stop {
					return
				}
				break
			}
			ents, then := a.queue, a.then
			a.queue, a.then, a.writing = nil, nil, true
			a.mu.Unlock()

			var err error
			if len(ents) > 0 {
				err = a.disk.persist(ents, HardState{})
			}
			if err == nil {
				for _, m := range then {
					// Lost if the queue is full: the leader resends what
					// was not acknowledged.
					_ = a.send(m)
				}
			}

			a.mu.Lock()
			a.writing = false
			if err != nil {
				a.err = err
			} else if len(ents) > 0 {
				a.durable = ents[len(ents)-1].Zxid
			}
			a.cond.Broadcast()
			a.mu.Unlock()
			select {
			case a.notify <- struct{}{}:
			default:
			}
		}
	}
}

// StartAppend writes ents to the MemoryStorage now and queues them for the
// data directory, then to send then; with nothing queued or being written
// and no ents, it sends then at once.
func (a *appender) StartAppend(ents []Entry, then []Message) error {
	a.mu.Lock()
	err, idle := a.err, !a.writing && len(a.queue)+len(a.then) == 0
	if a.stopped {
		err = errAppenderStopped
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}
	if len(ents) == 0 && idle {
		for _, m := range then {
			_ = a.send(m)
		}
		return nil
	}
	if err := a.mem.Append(ents); err != nil {
		return err
	}
	a.mu.Lock()
	a.queue = append(a.queue, ents...)
	a.then = append(a.then, then...)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return nil
}

// Flush waits until every started append is durable and what follows it
// sent. The writes it waited for are not reported after it (state).
func (a *appender) Flush() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for a.err == nil && !a.stopped && (a.writing || len(a.queue)+len(a.then) > 0) {
		a.cond.Wait()
	}
	if a.err == nil && (a.writing || len(a.queue)+len(a.then) > 0) {
		return errAppenderStopped
	}
	a.durable = 0
	return a.err
}

// state returns the durable end of the writes since the last Flush (0:
// none) and the error that stopped the writes.
func (a *appender) state() (Zxid, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.durable, a.err
}

// stop ends the goroutine once the write under way (if any) is done;
// what is still queued is never written (as if the process had crashed
// before its fsync). The data directory may be closed after stop returns.
func (a *appender) stop() {
	a.mu.Lock()
	a.stopped = true
	a.cond.Broadcast()
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
	<-a.exited
}
