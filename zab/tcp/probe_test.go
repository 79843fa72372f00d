package tcp

import (
	"bufio"
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// ProbeSameID finds a live process with this id at an address whether or
// not it has talked to anyone (a fresh transport with no peers), and finds
// none where nothing listens (a restarted process's old address), where
// this very process listens, or where another id answers. Of the two live
// processes exactly one is the later start.
func TestProbeSameID(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, key := range [][]byte{nil, []byte("0123456789abcdef0123456789abcdef")} {
		opt := func(c *Config) { c.SecretKey = key }
		first := newTransport(t, 1, opt)
		second := newTransport(t, 1, opt)
		other := newTransport(t, 2, opt)

		c, err := second.ProbeSameID(ctx, first.Addr().String())
		require.NoError(t, err)
		require.NotNil(t, c)
		require.False(t, c.Joined)
		first.SetJoined()
		c, err = second.ProbeSameID(ctx, first.Addr().String())
		require.NoError(t, err)
		require.True(t, c.Joined)
		back, err := first.ProbeSameID(ctx, second.Addr().String())
		require.NoError(t, err)
		require.NotEqual(t, second.StartedAfter(c), first.StartedAfter(back), "exactly one is the later start")
		require.True(t, second.StartedAfter(c), "second was started later")
		// The acceptor counts a refusal after writing it, so the prober
		// may read the answer first.
		eventually(t, 5*time.Second, func() bool { return first.Stats().DuplicateIDs == 2 },
			"the probed one logs and counts each probe (counted %d)", first.Stats().DuplicateIDs)

		for name, addr := range map[string]string{
			"self":    second.Addr().String(),
			"another": other.Addr().String(),
		} {
			c, err := second.ProbeSameID(ctx, addr)
			require.Nil(t, c, name)
			require.Error(t, err, name)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		gone := ln.Addr().String()
		require.NoError(t, ln.Close())
		c, err = second.ProbeSameID(ctx, gone)
		require.Nil(t, c, "nothing listens")
		require.Error(t, err)
	}
}

// With a SecretKey, only a process that knows the key can answer a probe
// as a live process with the prober's id: a stranger at an address gossip
// reports (or one with another key) cannot make the prober yield or fail
// its Join. Without a key nothing is authenticated, answers included.
func TestProbeSameIDProvesKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := []byte("0123456789abcdef0123456789abcdef")
	withKey := func(k []byte) func(*Config) { return func(c *Config) { c.SecretKey = k } }

	// stranger answers every hello with a claim of the dialer's id:
	// started long ago, joined, with mac (nil: none).
	stranger := func(mac []byte) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					if _, _, err := ReadFrame(bufio.NewReader(c), maxHandshakePayload, nil); err != nil {
						return
					}
					_ = writeFrame(c, KindRefuse, &refusal{Reason: ErrDuplicateID.Error(), Instance: 42, Started: 1,
						Joined: true, MAC: mac})
				}()
			}
		}()
		return ln.Addr().String()
	}

	prober := newTransport(t, 1, withKey(key))
	genuine := newTransport(t, 1, withKey(key))
	otherKey := newTransport(t, 1, withKey([]byte("another key of 32 bytes, not ours")))
	for name, tc := range map[string]struct {
		addr string
		ok   bool
	}{
		"same key":         {genuine.Addr().String(), true},
		"another key":      {otherKey.Addr().String(), false},
		"stranger":         {stranger(nil), false},
		"stranger guesses": {stranger(make([]byte, 32)), false},
	} {
		c, err := prober.ProbeSameID(ctx, tc.addr)
		if tc.ok {
			require.NoError(t, err, name)
			require.NotNil(t, c, name)
			continue
		}
		require.Nil(t, c, name)
		require.ErrorIs(t, err, ErrAuth, name)
	}

	plain := newTransport(t, 1)
	c, err := plain.ProbeSameID(ctx, stranger(nil))
	require.NoError(t, err)
	require.NotNil(t, c, "without a key an answer is taken as it comes")
}
