package tree

import (
	"github.com/vmihailenco/msgpack/v5"

	"github.com/coord-dev/coord/internal/msgpackcheck"
)

// An Op travels inside every replicated request (internal/proposal), so it
// is encoded and decoded on every write, and every write's result is
// encoded for dedup. The codecs here do by hand what the msgpack library's
// reflection did from the struct tags, byte for byte, so logs, snapshots
// and peers of either version read each other's bytes;
// TestOpCodecMatchesReflection and TestResultRecCodecMatchesReflection hold
// them to it.

// EncodeMsgpack writes op as the msgpack map its struct tags describe (a
// map of the fields not empty, in field order, ints at their type's full
// width), as msgpack.CustomEncoder.
func (op Op) EncodeMsgpack(enc *msgpack.Encoder) error {
	n := 1
	for _, set := range [...]bool{op.Path != "", len(op.Data) > 0, op.Mode != 0, op.TTL != 0,
		op.Version != 0, op.Session != 0, op.Timeout != 0, len(op.Ops) > 0} {
		if set {
			n++
		}
	}
	if err := enc.EncodeMapLen(n); err != nil {
		return err
	}
	if err := enc.EncodeString("t"); err != nil {
		return err
	}
	if err := enc.EncodeUint8(uint8(op.Type)); err != nil {
		return err
	}
	if op.Path != "" {
		if err := enc.EncodeString("p"); err != nil {
			return err
		}
		if err := enc.EncodeString(op.Path); err != nil {
			return err
		}
	}
	if len(op.Data) > 0 {
		if err := enc.EncodeString("d"); err != nil {
			return err
		}
		if err := enc.EncodeBytes(op.Data); err != nil {
			return err
		}
	}
	if op.Mode != 0 {
		if err := enc.EncodeString("m"); err != nil {
			return err
		}
		if err := enc.EncodeUint8(uint8(op.Mode)); err != nil {
			return err
		}
	}
	if op.TTL != 0 {
		if err := enc.EncodeString("l"); err != nil {
			return err
		}
		if err := enc.EncodeInt64(op.TTL); err != nil {
			return err
		}
	}
	if op.Version != 0 {
		if err := enc.EncodeString("v"); err != nil {
			return err
		}
		if err := enc.EncodeInt32(op.Version); err != nil {
			return err
		}
	}
	if op.Session != 0 {
		if err := enc.EncodeString("s"); err != nil {
			return err
		}
		if err := enc.EncodeInt64(op.Session); err != nil {
			return err
		}
	}
	if op.Timeout != 0 {
		if err := enc.EncodeString("o"); err != nil {
			return err
		}
		if err := enc.EncodeInt32(op.Timeout); err != nil {
			return err
		}
	}
	if len(op.Ops) > 0 {
		if err := enc.EncodeString("x"); err != nil {
			return err
		}
		if err := enc.EncodeArrayLen(len(op.Ops)); err != nil {
			return err
		}
		for i := range op.Ops {
			if err := op.Ops[i].EncodeMsgpack(enc); err != nil {
				return err
			}
		}
	}
	return nil
}

// DecodeMsgpack reads an op written by EncodeMsgpack, or by the reflection
// of earlier versions (msgpack.CustomDecoder): fields in any order, ints
// of any width, nil as the zero value, unknown fields skipped.
func (op *Op) DecodeMsgpack(dec *msgpack.Decoder) error {
	*op = Op{}
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
		var u uint64
		var i int64
		switch string(key) {
		case "t":
			u, err = dec.DecodeUint64()
			op.Type = OpType(u)
		case "p":
			op.Path, err = dec.DecodeString()
		case "d":
			op.Data, err = dec.DecodeBytes()
		case "m":
			u, err = dec.DecodeUint64()
			op.Mode = CreateMode(u)
		case "l":
			op.TTL, err = dec.DecodeInt64()
		case "v":
			i, err = dec.DecodeInt64()
			op.Version = int32(i)
		case "s":
			op.Session, err = dec.DecodeInt64()
		case "o":
			i, err = dec.DecodeInt64()
			op.Timeout = int32(i)
		case "x":
			op.Ops, err = decodeOps(dec)
		default:
			err = dec.Skip()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// decodeOps reads a multi's ops. The length is trusted only as far as the
// bytes hold (the caller checked them, msgpackcheck.Check), and the slice
// grows as ops arrive rather than from the declared length.
func decodeOps(dec *msgpack.Decoder) ([]Op, error) {
	n, err := dec.DecodeArrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	ops := make([]Op, 0, min(n, 16))
	for range n {
		var op Op
		if err := op.DecodeMsgpack(dec); err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// encodeResultRec writes rec as the reflection of earlier versions did
// with array-encoded structs and compact ints (resultEncoder's settings):
// each struct an array of all its fields in order, a nil slice as msgpack
// nil. Dedup keeps these bytes for every write and snapshots hold them;
// decodeResultRec reads them by reflection (a retry's only).
func encodeResultRec(enc *msgpack.Encoder, rec *resultRec) error {
	s := &rec.Stat
	if err := enc.EncodeArrayLen(7); err != nil {
		return err
	}
	if err := enc.EncodeUint(uint64(rec.Type)); err != nil {
		return err
	}
	if err := enc.EncodeUint(uint64(rec.Err)); err != nil {
		return err
	}
	if err := enc.EncodeString(rec.Path); err != nil {
		return err
	}
	if err := enc.EncodeArrayLen(11); err != nil {
		return err
	}
	for _, v := range [...]int64{s.Czxid, s.Mzxid, s.Pzxid, s.Ctime, s.Mtime, int64(s.Version),
		int64(s.Cversion), int64(s.Aversion), s.EphemeralOwner, int64(s.DataLength), int64(s.NumChildren)} {
		if err := enc.EncodeInt(v); err != nil {
			return err
		}
	}
	if rec.Results == nil {
		if err := enc.EncodeNil(); err != nil {
			return err
		}
	} else {
		if err := enc.EncodeArrayLen(len(rec.Results)); err != nil {
			return err
		}
		for i := range rec.Results {
			if err := encodeResultRec(enc, &rec.Results[i]); err != nil {
				return err
			}
		}
	}
	if err := enc.EncodeInt(rec.Session); err != nil {
		return err
	}
	return enc.EncodeUint(uint64(rec.Rel))
}
