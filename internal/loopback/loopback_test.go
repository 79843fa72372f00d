package loopback

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
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

// TestMain runs this binary as TestFreeAddrNeverHandsOutAPortTwice's
// other process when asked to.
func TestMain(m *testing.M) {
	if p := os.Getenv("LOOPBACK_RESERVE_CHILD"); p != "" {
		port, err := strconv.Atoi(p)
		if err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		fmt.Printf("reserved elsewhere: %v\n", !reserve(port))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestFreeAddrNeverHandsOutAPortTwice: a drawn port nobody has bound yet is
// not drawn again, neither by this process nor by another one.
func TestFreeAddrNeverHandsOutAPortTwice(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ports are reserved only on Linux")
	}
	addr, err := FreeAddr()
	require.NoError(t, err)
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	port, err := strconv.Atoi(p)
	require.NoError(t, err)
	require.False(t, reserve(port), "a drawn port is reserved in this process")

	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "LOOPBACK_RESERVE_CHILD="+strconv.Itoa(port))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "reserved elsewhere: true")
}
