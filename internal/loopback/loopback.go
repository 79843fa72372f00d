// Package loopback picks free addresses on 127.0.0.1 for tests and examples
// that start clusters in one process.
package loopback

import (
	"errors"
	"net"
)

// FreeAddr returns a 127.0.0.1 address whose port is free for both TCP and
// UDP right now (memberlist listens on both with one port). Another process
// may take it before it is used; callers that bind it should expect that.
func FreeAddr() (string, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr, nil
		}
	}
	return "", errors.New("loopback: no port free for both TCP and UDP")
}
