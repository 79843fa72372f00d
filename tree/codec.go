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
	w := msgpackcheck.Writer{Enc: enc}
	w.Map(1 + msgpackcheck.Count(op.Path != "", len(op.Data) > 0, op.Mode != 0, op.TTL != 0,
		op.Version != 0, op.Session != 0, op.Timeout != 0, len(op.Ops) > 0))
	w.Uint8Full("t", uint8(op.Type))
	if op.Path != "" {
		w.String("p", op.Path)
	}
	if len(op.Data) > 0 {
		w.Bytes("d", op.Data)
	}
	if op.Mode != 0 {
		w.Uint8Full("m", uint8(op.Mode))
	}
	if op.TTL != 0 {
		w.Int64Full("l", op.TTL)
	}
	if op.Version != 0 {
		w.Int32Full("v", op.Version)
	}
	if op.Session != 0 {
		w.Int64Full("s", op.Session)
	}
	if op.Timeout != 0 {
		w.Int32Full("o", op.Timeout)
	}
	if len(op.Ops) > 0 && w.Key("x") {
		w.Err = enc.EncodeArrayLen(len(op.Ops))
		for i := range op.Ops {
			if w.Err == nil {
				w.Err = op.Ops[i].EncodeMsgpack(enc)
			}
		}
	}
	return w.Err
}

// DecodeMsgpack reads an op written by EncodeMsgpack, or by the reflection
// of earlier versions (msgpack.CustomDecoder): fields in any order, ints
// of any width, nil as the zero value, unknown fields skipped. Unlike
// reflection it takes no op written as an array, which no version wrote.
func (op *Op) DecodeMsgpack(dec *msgpack.Decoder) error {
	*op = Op{}
	return msgpackcheck.Fields(dec, func(key []byte) error {
		var err error
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
			op.Ops, err = msgpackcheck.Slice(dec, func(sub *Op) error { return sub.DecodeMsgpack(dec) })
		default:
			err = dec.Skip()
		}
		return err
	})
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
