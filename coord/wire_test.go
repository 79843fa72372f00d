package coord

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/internal/faultproxy"
	"github.com/coord-dev/coord/zab/tcp"
)

// TestReplicationEncryptedOnTheWire: with a SecretKey, znode data written
// through coord never crosses the replication network in the clear; without
// one it does (which is how the capture shows it can see the data at all).
// Every node's replication traffic goes through a fault proxy whose Tap
// records every byte.
func TestReplicationEncryptedOnTheWire(t *testing.T) {
	for _, c := range []struct {
		name  string
		key   []byte
		clear bool
	}{
		{"no key", nil, true},
		{"key", []byte("0123456789abcdef0123456789abcdef"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			var wire bytes.Buffer
			proxy := faultproxy.New(faultproxy.Config{
				Identify: func(r *bufio.Reader) (int, error) {
					id, err := tcp.PeekHello(r)
					return int(id), err
				},
				Tap: func(_, _ int, b []byte) {
					mu.Lock()
					wire.Write(b)
					mu.Unlock()
				},
			})
			t.Cleanup(func() { proxy.Close() })
			bind, adv := map[uint64]string{}, map[uint64]string{}
			for id := uint64(1); id <= 3; id++ {
				bind[id] = freeAddr(t)
				a, err := proxy.Listen(int(id), "127.0.0.1:0", bind[id])
				require.NoError(t, err)
				adv[id] = a
			}
			cl := startCluster(t, 3, func(cfg *Config) {
				cfg.SecretKey = c.key
				cfg.ReplicationBindAddr, cfg.ReplicationAdvertiseAddr = bind[cfg.NodeID], adv[cfg.NodeID]
			})
			var r [16]byte
			_, _ = rand.Read(r[:])
			marker := "znode-data-" + hex.EncodeToString(r[:])
			path := "/wire-" + hex.EncodeToString(r[:4])
			ctx := ctxT(t)
			l := cl.leader()
			_, err := cl.nodes[l].Create(ctx, path, []byte(marker), Persistent)
			require.NoError(t, err)
			// Every follower has applied it, so the proposal (data and
			// path) crossed the proxy to both.
			for id, n := range cl.nodes {
				require.NoError(t, n.Sync(ctx), "node %d", id)
				data, _, err := n.Get(ctx, path)
				require.NoError(t, err, "node %d", id)
				require.Equal(t, marker, string(data))
			}
			mu.Lock()
			defer mu.Unlock()
			require.Greater(t, wire.Len(), 0, "nothing crossed the proxy")
			require.Equal(t, c.clear, bytes.Contains(wire.Bytes(), []byte(marker)),
				"znode data in the clear on the wire (%d bytes captured)", wire.Len())
			require.Equal(t, c.clear, bytes.Contains(wire.Bytes(), []byte(path)),
				"znode path in the clear on the wire")
		})
	}
}
