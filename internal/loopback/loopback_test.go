package loopback

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFreeAddrBelowEphemeralRange: the ports come from below the kernel's
// ephemeral range (where outgoing connections take their source ports) and
// can be bound for TCP and UDP.
func TestFreeAddrBelowEphemeralRange(t *testing.T) {
	lo, hi := portRange()
	for range 20 {
		addr, err := FreeAddr()
		require.NoError(t, err)
		host, p, err := net.SplitHostPort(addr)
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1", host)
		port, err := strconv.Atoi(p)
		require.NoError(t, err)
		require.True(t, port >= lo && port < hi, "port %d outside [%d, %d)", port, lo, hi)
		l, err := net.Listen("tcp", addr)
		require.NoError(t, err)
		u, err := net.ListenPacket("udp", addr)
		require.NoError(t, err)
		l.Close()
		u.Close()
	}
}
