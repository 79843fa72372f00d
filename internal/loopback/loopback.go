// Package loopback picks free addresses on 127.0.0.1 for tests and examples
// that start clusters in one process.
package loopback

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// FreeAddr returns a 127.0.0.1 address whose port is free for both TCP and
// UDP right now (memberlist listens on both with one port).
//
// The port is drawn at random below the kernel's ephemeral range, not
// handed out by it (port 0): a port the kernel hands out and the caller
// releases to bind it later is where the kernel puts the source ports of
// outgoing connections too, and on a busy machine one of those took it in
// between ("address already in use"). Below the range only a listener that
// draws the same port can collide, and a drawn port is reserved (reserve)
// so that no other draw, in this process or another, hands it out again
// while its taker has yet to bind it.
func FreeAddr() (string, error) {
	lo, hi := portRange()
	for range 200 {
		port := lo + rand.IntN(hi-lo)
		if !reserve(port) {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr, nil
		}
	}
	return "", errors.New("loopback: no port free for both TCP and UDP")
}

// reserveFor is how long a drawn port stays reserved: longer than any test
// takes between drawing its addresses and binding them, even on a loaded
// machine.
const reserveFor = 5 * time.Minute

// reserve claims port for reserveFor among the users of FreeAddr. A free
// port is free until someone binds it, and a test draws its nodes'
// addresses before it starts them (the node that binds last may start
// seconds later): without a reservation another draw in that window, by
// the same test binary or by one of the others go test runs beside it,
// can hand out the same port, and one of the two binds fails. On Linux the
// claim is an abstract unix socket named after the port, which only one
// socket at a time can hold and which the kernel frees when the process
// ends; elsewhere nothing is reserved.
func reserve(port int) bool {
	if runtime.GOOS != "linux" {
		return true
	}
	l, err := net.Listen("unix", fmt.Sprintf("@coord-loopback-port-%d", port))
	if err != nil {
		return false
	}
	time.AfterFunc(reserveFor, func() { l.Close() })
	return true
}

// portRange returns the ports FreeAddr draws from: from 10000 up to the
// start of the ephemeral range (Linux's, else the IANA one at 49152).
func portRange() (lo, hi int) {
	lo, hi = 10000, 49152
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > lo+1000 {
				hi = n
			}
		}
	}
	return lo, hi
}
