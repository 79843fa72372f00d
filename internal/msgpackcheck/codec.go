package msgpackcheck

import (
	"github.com/vmihailenco/msgpack/v5"
)

// The helpers below serve the hand-written codecs of the types encoded on
// every write (tree.Op, proposal.Request, zab.Message in zab/tcp), which do
// what the msgpack library's reflection did from struct tags, without its
// cost. Their decoders run on bytes Check has accepted.

// Fields reads a msgpack map (nil reads as empty) and calls field with
// each key and the decoder positioned at its value, which field must
// consume (dec.Skip for a key it does not know). Keys are read without
// allocating (switch on string(key), which does not allocate either); a key
// longer than 8 bytes (no field name is) or nil comes as an empty key. Like
// the library, Fields takes keys written as str or bin.
func Fields(dec *msgpack.Decoder, field func(key []byte) error) error {
	n, err := dec.DecodeMapLen()
	if err != nil {
		return err
	}
	var buf [8]byte
	for range n {
		k, err := dec.DecodeBytesLen()
		if err != nil {
			return err
		}
		key := buf[:0]
		if k > len(buf) {
			for k > 0 {
				m := min(k, len(buf))
				if err := dec.ReadFull(buf[:m]); err != nil {
					return err
				}
				k -= m
			}
		} else if k > 0 {
			key = buf[:k]
			if err := dec.ReadFull(key); err != nil {
				return err
			}
		}
		if err := field(key); err != nil {
			return err
		}
	}
	return nil
}

// Slice reads a msgpack array with one call of elem per element: nil for a
// msgpack nil, an empty slice for an empty array (as reflection decodes
// them). The declared length sizes the slice only up to 64 elements, so a
// decoder called on bytes Check has not seen cannot be made to allocate
// beyond them.
func Slice[T any](dec *msgpack.Decoder, elem func(*T) error) ([]T, error) {
	n, err := dec.DecodeArrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	out := make([]T, 0, min(n, 64))
	for range n {
		var v T
		if err := elem(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Writer writes the entries of a msgpack map, keeping the first error, so
// an encoder reads as the list of its fields. Int methods write compact
// ints (the smallest form); the Full methods write ints at their type's
// full width, as an encoder without UseCompactInts does.
type Writer struct {
	Enc *msgpack.Encoder
	Err error
}

// Map starts a map of n entries.
func (w *Writer) Map(n int) {
	if w.Err == nil {
		w.Err = w.Enc.EncodeMapLen(n)
	}
}

// Key writes a key and reports whether its value may follow.
func (w *Writer) Key(k string) bool {
	if w.Err == nil {
		w.Err = w.Enc.EncodeString(k)
	}
	return w.Err == nil
}

// Uint writes k and v in its smallest form.
func (w *Writer) Uint(k string, v uint64) {
	if w.Key(k) {
		w.Err = w.Enc.EncodeUint(v)
	}
}

// Uint8Full writes k and v as a msgpack uint8.
func (w *Writer) Uint8Full(k string, v uint8) {
	if w.Key(k) {
		w.Err = w.Enc.EncodeUint8(v)
	}
}

// Uint64Full writes k and v as a msgpack uint64.
func (w *Writer) Uint64Full(k string, v uint64) {
	if w.Key(k) {
		w.Err = w.Enc.EncodeUint64(v)
	}
}

// Int32Full writes k and v as a msgpack int32.
func (w *Writer) Int32Full(k string, v int32) {
	if w.Key(k) {
		w.Err = w.Enc.EncodeInt32(v)
	}
}

// Int64Full writes k and v as a msgpack int64.
func (w *Writer) Int64Full(k string, v int64) {
	if w.Key(k) {
		w.Err = w.Enc.EncodeInt64(v)
	}
}

// String writes k and v.
func (w *Writer) String(k, v string) {
	if w.Key(k) {
		w.Err = w.Enc.EncodeString(v)
	}
}

// Bytes writes k and v as bin (nil as msgpack nil).
func (w *Writer) Bytes(k string, v []byte) {
	if w.Key(k) {
		w.Err = w.Enc.EncodeBytes(v)
	}
}

// True writes k and true.
func (w *Writer) True(k string) {
	if w.Key(k) {
		w.Err = w.Enc.EncodeBool(true)
	}
}

// Count returns how many of set are true: the entries of a map whose
// empty fields are left out.
func Count(set ...bool) int {
	n := 0
	for _, s := range set {
		if s {
			n++
		}
	}
	return n
}
