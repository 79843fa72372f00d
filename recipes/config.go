package recipes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coord-dev/coord/coord"
)

// Codec turns a value into a znode's bytes and back.
type Codec[T any] interface {
	Marshal(v T) ([]byte, error)
	Unmarshal(data []byte) (T, error)
}

// JSONCodec is the default Codec: encoding/json.
type JSONCodec[T any] struct{}

// Marshal encodes v as JSON.
func (JSONCodec[T]) Marshal(v T) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON into a new T.
func (JSONCodec[T]) Unmarshal(data []byte) (T, error) {
	var v T
	err := json.Unmarshal(data, &v)
	return v, err
}

// ErrNotInt64 wraps the decoding error of a counter znode whose data is not
// a decimal int64.
var ErrNotInt64 = errors.New("recipes: counter data is not an int64")

// Int64Codec stores an int64 as its decimal text (what an operator reads
// with a CLI); empty data is 0.
type Int64Codec struct{}

// Marshal formats v in decimal.
func (Int64Codec) Marshal(v int64) ([]byte, error) { return strconv.AppendInt(nil, v, 10), nil }

// Unmarshal parses decimal text; empty data is 0.
func (Int64Codec) Unmarshal(data []byte) (int64, error) {
	if len(data) == 0 {
		return 0, nil
	}
	v, err := strconv.ParseInt(string(data), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNotInt64, err)
	}
	return v, nil
}

// ErrDecode wraps a codec's failure to decode a znode's data.
var ErrDecode = errors.New("recipes: cannot decode value")

// Value is one state of a Config's znode.
type Value[T any] struct {
	V      T
	Exists bool       // false: the znode does not exist (V is the zero value)
	Stat   coord.Stat // the znode's stat (zero when it does not exist)
	// Err is set when the znode's data did not decode (V is the zero value).
	Err error
}

// ConfigOptions configure a Config.
type ConfigOptions[T any] struct {
	// Codec encodes the value; nil means JSONCodec.
	Codec Codec[T]
}

// Config is a typed view of one znode kept current by a watch, with a
// versioned compare-and-set Update. It never shows an older value after a
// newer one: a state is published only if its Mzxid is higher than the one
// shown (or the znode was deleted or re-created since), and when its session
// is lost or its node's leader changes it resumes through a Cache (see
// Cache), which makes a new session's replica catch up before reading.
//
// Subscribers get the newest value on a channel that holds one: a slow
// subscriber skips intermediate values, never sees them out of order.
type Config[T any] struct {
	path  string
	codec Codec[T]
	cache *Cache

	mu   sync.Mutex
	cur  Value[T]
	subs map[chan Value[T]]struct{}
}

// NewConfig starts watching the znode at path (which need not exist) and
// returns once its current value is loaded. ctx bounds the load. Close it
// when done.
func NewConfig[T any](ctx context.Context, sessions SessionFactory, path string, opts ConfigOptions[T]) (*Config[T], error) {
	c := &Config[T]{path: path, codec: opts.Codec, subs: map[chan Value[T]]struct{}{}}
	if c.codec == nil {
		c.codec = JSONCodec[T]{}
	}
	c.cache = NewCache(sessions, path, CacheOptions{SingleNode: true})
	c.cache.Listen(c.onEvent)
	if err := c.cache.Start(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config[T]) onEvent(ev CacheEvent) {
	var v Value[T]
	switch ev.Type {
	case CacheCreated, CacheChanged:
		v = Value[T]{Exists: true, Stat: ev.Entry.Stat}
		if val, err := c.codec.Unmarshal(ev.Entry.Data); err != nil {
			v.Err = fmt.Errorf("%w: %s: %w", ErrDecode, c.path, err)
		} else {
			v.V = val
		}
	case CacheDeleted:
	default:
		return
	}
	c.publish(v)
}

// publish shows v unless it is older than what is shown.
func (c *Config[T]) publish(v Value[T]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.cur
	switch {
	case v.Exists && cur.Exists && v.Stat.Mzxid <= cur.Stat.Mzxid:
		return // not newer
	case !v.Exists && !cur.Exists:
		return
	}
	c.cur = v
	for ch := range c.subs {
		select { // keep only the newest undelivered value
		case <-ch:
		default:
		}
		ch <- v
	}
}

// Get returns the current value.
func (c *Config[T]) Get() Value[T] {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// Subscribe returns a channel that receives the current value at once and
// then every newer one (holding only the newest a slow reader has not
// taken), and a function that ends the subscription and closes the channel.
func (c *Config[T]) Subscribe() (<-chan Value[T], func()) {
	ch := make(chan Value[T], 1)
	c.mu.Lock()
	ch <- c.cur
	c.subs[ch] = struct{}{}
	c.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			c.mu.Lock()
			if _, ok := c.subs[ch]; ok {
				delete(c.subs, ch)
				close(ch)
			}
			c.mu.Unlock()
		})
	}
}

// Done is closed when the Config stops following the znode (see Cache.Done).
func (c *Config[T]) Done() <-chan struct{} { return c.cache.Done() }

// Err reports why the Config stopped, nil while it runs.
func (c *Config[T]) Err() error { return c.cache.Err() }

// Close stops watching and closes the subscribers' channels. Idempotent.
func (c *Config[T]) Close() error {
	err := c.cache.Close()
	c.mu.Lock()
	for ch := range c.subs {
		delete(c.subs, ch)
		close(ch)
	}
	c.mu.Unlock()
	return err
}

// Update replaces the value by fn(old) with a versioned compare-and-set,
// creating the znode (and its missing parents, as containers) if it does not
// exist, old then being the zero value. If another writer got in between,
// it reads again and calls fn again, so fn must have no other effect. An
// error from fn aborts the update and is returned. It returns the value
// written and its stat; Get shows it (or a newer value) once Update returns.
//
// A write whose outcome is unknown (coord.ErrOutcomeUnknown) is not
// retried: fn would be applied twice if the first write had landed.
func (c *Config[T]) Update(ctx context.Context, fn func(old T) (T, error)) (T, coord.Stat, error) {
	var last Session
	for {
		s, err := c.cache.sessions(ctx)
		if err != nil {
			var zero T
			return zero, coord.Stat{}, err
		}
		v, st, err := update(ctx, s, c.path, c.codec, fn)
		if errors.Is(err, coord.ErrSessionExpired) && s != last {
			last = s // the factory may have a new session: writes need not use the old one
			continue
		}
		if err == nil {
			// Read your writes: Get shows this value (or a newer one) at once.
			c.publish(Value[T]{V: v, Exists: true, Stat: st})
		}
		return v, st, err
	}
}

// errReadFresh, returned by an update's fn, asks for a synced read and
// another call.
var errReadFresh = errors.New("recipes: read again after Sync")

// update is the versioned read-modify-write loop of Config and Counter.
func update[T any](ctx context.Context, s Session, path string, codec Codec[T], fn func(old T) (T, error)) (T, coord.Stat, error) {
	var zero T
	stale := false
	for {
		if stale {
			// Lost a race: the replica may be behind the winner.
			if err := syncRetry(ctx, s); err != nil {
				return zero, coord.Stat{}, err
			}
		}
		stale = true
		data, st, err := s.Get(ctx, path)
		exists := err == nil
		if err != nil && !errors.Is(err, coord.ErrNoNode) {
			return zero, coord.Stat{}, err
		}
		old := zero
		if exists {
			if old, err = codec.Unmarshal(data); err != nil {
				return zero, coord.Stat{}, fmt.Errorf("%w: %s: %w", ErrDecode, path, err)
			}
		}
		nv, err := fn(old)
		if errors.Is(err, errReadFresh) {
			continue // stale is set: Sync and read again
		}
		if err != nil {
			return zero, coord.Stat{}, err
		}
		out, err := codec.Marshal(nv)
		if err != nil {
			return zero, coord.Stat{}, err
		}
		if exists {
			nst, err := s.Set(ctx, path, out, st.Version)
			if errors.Is(err, coord.ErrBadVersion) || errors.Is(err, coord.ErrNoNode) {
				continue
			}
			return nv, nst, err
		}
		res, err := s.Multi(ctx, coord.CreateOp(path, out, coord.Persistent))
		switch {
		case errors.Is(err, coord.ErrNodeExists):
			continue
		case errors.Is(err, coord.ErrNoNode):
			if err := ensureDir(ctx, s, parentDir(path)); err != nil {
				return zero, coord.Stat{}, err
			}
			stale = false
			continue
		case err != nil:
			return zero, coord.Stat{}, err
		}
		return nv, res[0].Stat, nil
	}
}

// parentDir returns path's parent ("/" for a top-level node).
func parentDir(path string) string {
	i := strings.LastIndexByte(path, '/')
	if i <= 0 {
		return "/"
	}
	return path[:i]
}

// syncRetry is Session.Sync retried while no leader is established
// (coord.ErrNoQuorum): writes wait through an election, and so do the
// recipes' synced reads.
func syncRetry(ctx context.Context, s Session) error {
	backoff := 5 * time.Millisecond
	for {
		err := s.Sync(ctx)
		if !errors.Is(err, coord.ErrNoQuorum) {
			return err
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}
