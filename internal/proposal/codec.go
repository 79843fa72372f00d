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

// EncodeMsgpack writes r as the msgpack map its struct tags describe (a
// map of the fields not empty, in field order, ints at their type's full
// width), as msgpack.CustomEncoder.
func (r *Request) EncodeMsgpack(enc *msgpack.Encoder) error {
	w := msgpackcheck.Writer{Enc: enc}
	w.Map(3 + msgpackcheck.Count(r.ReqID != 0, r.Session != 0, r.MaxData != 0, r.Since != 0,
		r.DigestAt != 0, r.Digest != 0, len(r.Forget) > 0))
	w.Uint64Full("o", r.Origin)
	if r.ReqID != 0 {
		w.Uint64Full("r", r.ReqID)
	}
	w.Int64Full("t", r.Time)
	if r.Session != 0 {
		w.Int64Full("s", r.Session)
	}
	if r.MaxData != 0 {
		w.Int32Full("m", r.MaxData)
	}
	if r.Since != 0 {
		w.Int64Full("si", r.Since)
	}
	if w.Key("p") {
		w.Err = r.Op.EncodeMsgpack(enc)
	}
	if r.DigestAt != 0 {
		w.Int64Full("da", r.DigestAt)
	}
	if r.Digest != 0 {
		w.Uint64Full("dg", r.Digest)
	}
	if len(r.Forget) > 0 && w.Key("fg") {
		w.Err = enc.EncodeArrayLen(len(r.Forget))
		for _, id := range r.Forget {
			if w.Err == nil {
				w.Err = enc.EncodeUint64(id)
			}
		}
	}
	return w.Err
}

// DecodeMsgpack reads a request written by EncodeMsgpack, or by the
// reflection of earlier versions (msgpack.CustomDecoder): fields in any
// order, ints of any width, nil as the zero value, unknown fields skipped.
func (r *Request) DecodeMsgpack(dec *msgpack.Decoder) error {
	*r = Request{}
	return msgpackcheck.Fields(dec, func(key []byte) error {
		var err error
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
		case "fg":
			r.Forget, err = msgpackcheck.Slice(dec, func(id *uint64) (err error) {
				*id, err = dec.DecodeUint64()
				return err
			})
		default:
			err = dec.Skip()
		}
		return err
	})
}

// encodedSize is about the size of r's encoding, so Encode allocates once.
func encodedSize(r *Request) int {
	n := 64 + len(r.Op.Path) + len(r.Op.Data) + 9*len(r.Forget)
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
