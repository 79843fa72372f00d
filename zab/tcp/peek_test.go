package tcp

import (
	"bufio"
	"bytes"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPeekHello: the dialer's id is read from its hello without consuming a
// byte; anything else at the head of the stream is an error.
func TestPeekHello(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, writeFrame(&buf, KindHello, &hello{Cluster: "c", From: 7, To: 2, Nonce: make([]byte, nonceSize)}))
	sent := append([]byte(nil), buf.Bytes()...)
	r := bufio.NewReader(&buf)
	id, err := PeekHello(r)
	require.NoError(t, err)
	require.EqualValues(t, 7, id)
	rest, err := io.ReadAll(r)
	require.NoError(t, err)
	require.Equal(t, sent, rest, "nothing consumed")

	var other bytes.Buffer
	require.NoError(t, writeFrame(&other, KindAuth, &authProof{}))
	_, err = PeekHello(bufio.NewReader(&other))
	require.ErrorIs(t, err, ErrHandshake)
	_, err = PeekHello(bufio.NewReader(bytes.NewReader([]byte{1, 2})))
	require.Error(t, err)
}
