package msgpackcheck

import (
	"github.com/vmihailenco/msgpack/v5"
)

// Key reads the next map key for a hand-written struct decoder (one that
// reads a struct's fields by name, as the msgpack library's reflection
// does) into buf and returns it, without allocating; switch on
// string(key), which does not allocate either. A key longer than buf (no
// field name is) is read and returned empty, as is a nil key, so the
// caller skips its value as an unknown field's. Like the library, Key
// takes a key written as str or bin.
func Key(dec *msgpack.Decoder, buf *[8]byte) ([]byte, error) {
	n, err := dec.DecodeBytesLen()
	if err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	if n > len(buf) {
		for n > 0 {
			k := min(n, len(buf))
			if err := dec.ReadFull(buf[:k]); err != nil {
				return nil, err
			}
			n -= k
		}
		return nil, nil
	}
	if err := dec.ReadFull(buf[:n]); err != nil {
		return nil, err
	}
	return buf[:n], nil
}
