package proposal

import (
	"bytes"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/coord-dev/coord/internal/msgpackcheck"
)

// A Request is encoded once, by its proposer, and decoded by every replica
// that applies it; its bytes are the log entry's as they are (after the
// leader's stamp). The encoder and decoder below do by hand what the
// msgpack library's reflection did from Request's struct tags, byte for
// byte: a map of the fields not empty, in field order, ints at their
// type's full width. So logs written by earlier versions read as they
// did, and replicas of either version, side by side in a rolling restart,
// read each other's entries (TestRequestCodecMatchesReflection).

// EncodeMsgpack writes r as the msgpack map its struct tags describe
// (msgpack.CustomEncoder).
func (r *Request) EncodeMsgpack(enc *msgpack.Encoder) error {
	n := 3 // o, t, p
	for _, set := range [...]bool{r.ReqID != 0, r.Session != 0, r.MaxData != 0, r.Since != 0,
		r.DigestAt != 0, r.Digest != 0} {
		if set {
			n++
		}
	}
	if err := enc.EncodeMapLen(n); err != nil {
		return err
	}
	if err := enc.EncodeString("o"); err != nil {
		return err
	}
	if err := enc.EncodeUint64(r.Origin); err != nil {
		return err
	}
	if r.ReqID != 0 {
		if err := enc.EncodeString("r"); err != nil {
			return err
		}
		if err := enc.EncodeUint64(r.ReqID); err != nil {
			return err
		}
	}
	if err := enc.EncodeString("t"); err != nil {
		return err
	}
	if err := enc.EncodeInt64(r.Time); err != nil {
		return err
	}
	if r.Session != 0 {
		if err := enc.EncodeString("s"); err != nil {
			return err
		}
		if err := enc.EncodeInt64(r.Session); err != nil {
			return err
		}
	}
	if r.MaxData != 0 {
		if err := enc.EncodeString("m"); err != nil {
			return err
		}
		if err := enc.EncodeInt32(r.MaxData); err != nil {
			return err
		}
	}
	if r.Since != 0 {
		if err := enc.EncodeString("si"); err != nil {
			return err
		}
		if err := enc.EncodeInt64(r.Since); err != nil {
			return err
		}
	}
	if err := enc.EncodeString("p"); err != nil {
		return err
	}
	if err := r.Op.EncodeMsgpack(enc); err != nil {
		return err
	}
	if r.DigestAt != 0 {
		if err := enc.EncodeString("da"); err != nil {
			return err
		}
		if err := enc.EncodeInt64(r.DigestAt); err != nil {
			return err
		}
	}
	if r.Digest != 0 {
		if err := enc.EncodeString("dg"); err != nil {
			return err
		}
		if err := enc.EncodeUint64(r.Digest); err != nil {
			return err
		}
	}
	return nil
}

// DecodeMsgpack reads a request written by EncodeMsgpack, or by the
// reflection of earlier versions (msgpack.CustomDecoder): fields in any
// order, ints of any width, nil as the zero value, unknown fields skipped.
func (r *Request) DecodeMsgpack(dec *msgpack.Decoder) error {
	*r = Request{}
	n, err := dec.DecodeMapLen()
	if err != nil {
		return err
	}
	var kb [8]byte
	for range n {
		key, err := msgpackcheck.Key(dec, &kb)
		if err != nil {
			return err
		}
		var i int64
		switch string(key) {
		case "o":
			r.Origin, err = dec.DecodeUint64()
		case "r":
			r.ReqID, err = dec.DecodeUint64()
		case "t":
			r.Time, err = dec.DecodeInt64()
		case "s":
			r.Session, err = dec.DecodeInt64()
		case "m":
			i, err = dec.DecodeInt64()
			r.MaxData = int32(i)
		case "si":
			r.Since, err = dec.DecodeInt64()
		case "p":
			err = r.Op.DecodeMsgpack(dec)
		case "da":
			r.DigestAt, err = dec.DecodeInt64()
		case "dg":
			r.Digest, err = dec.DecodeUint64()
		default:
			err = dec.Skip()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// encodedSize is about the size of r's encoding, so Encode allocates once.
func encodedSize(r *Request) int {
	n := 64 + len(r.Op.Path) + len(r.Op.Data)
	for i := range r.Op.Ops {
		n += 32 + len(r.Op.Ops[i].Path) + len(r.Op.Ops[i].Data)
	}
	return n
}

// Encode returns r's encoding, as proposed (without a stamp).
func Encode(r *Request) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(encodedSize(r))
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	if err := r.EncodeMsgpack(enc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
