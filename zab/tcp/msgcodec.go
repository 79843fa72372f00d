package tcp

import (
	"github.com/vmihailenco/msgpack/v5"

	"github.com/coord-dev/coord/internal/msgpackcheck"
	"github.com/coord-dev/coord/zab"
)

// Every message between peers is encoded by its sender's writer and decoded
// by its receiver's reader, so encodeMessage and decodeMessage do by hand
// what the msgpack library's reflection did from zab.Message's struct tags
// (with compact ints, as BatchEncoder set), byte for byte: a map of the
// fields not empty, in field order. Peers of either version read each
// other's frames, as in a rolling restart (TestMessageCodecMatchesReflection).

// encodeMessage writes m as reflection did with compact ints. With e, its
// large byte fields may be left out of enc's buffer (BatchEncoder.bytesField).
func encodeMessage(enc *msgpack.Encoder, m *zab.Message, e *BatchEncoder) error {
	w := msgpackcheck.Writer{Enc: enc}
	w.Map(3 + msgpackcheck.Count(m.Epoch != 0, m.Zxid != 0, len(m.Entries) > 0, m.Prev != 0,
		m.Commit != 0, m.Leader != 0, m.Round != 0, m.State != 0, m.Current != 0, m.Cluster != 0,
		m.Member, m.Fixed, m.Seq != 0, m.ReqID != 0, len(m.ReqIDs) > 0, m.Inc != 0, m.Mode != 0,
		len(m.Snap) > 0, m.Offset != 0, m.Total != 0, m.Reject, m.NewLeader, m.Accepted,
		m.Observer, m.Established, len(m.Voters) > 0, m.Change != 0, m.Target != 0, m.Code != 0))
	w.Uint("t", uint64(m.Type))
	w.Uint("f", uint64(m.From))
	w.Uint("o", uint64(m.To))
	if m.Epoch != 0 {
		w.Uint("e", uint64(m.Epoch))
	}
	if m.Zxid != 0 {
		w.Uint("z", uint64(m.Zxid))
	}
	if len(m.Entries) > 0 && w.Key("n") {
		w.Err = enc.EncodeArrayLen(len(m.Entries))
		for i := range m.Entries {
			if w.Err == nil {
				w.Err = encodeEntry(enc, &m.Entries[i], e)
			}
		}
	}
	if m.Prev != 0 {
		w.Uint("p", uint64(m.Prev))
	}
	if m.Commit != 0 {
		w.Uint("c", uint64(m.Commit))
	}
	if m.Leader != 0 {
		w.Uint("l", uint64(m.Leader))
	}
	if m.Round != 0 {
		w.Uint("r", m.Round)
	}
	if m.State != 0 {
		w.Uint("s", uint64(m.State))
	}
	if m.Current != 0 {
		w.Uint("cu", uint64(m.Current))
	}
	if m.Cluster != 0 {
		w.Uint("cl", m.Cluster)
	}
	if m.Member {
		w.True("mb")
	}
	if m.Fixed {
		w.True("fx")
	}
	if m.Seq != 0 {
		w.Uint("q", m.Seq)
	}
	if m.ReqID != 0 {
		w.Uint("i", m.ReqID)
	}
	if len(m.ReqIDs) > 0 && w.Key("is") {
		w.Err = enc.EncodeArrayLen(len(m.ReqIDs))
		for _, id := range m.ReqIDs {
			if w.Err == nil {
				w.Err = enc.EncodeUint(id)
			}
		}
	}
	if m.Inc != 0 {
		w.Uint("in", m.Inc)
	}
	if m.Mode != 0 {
		w.Uint("m", uint64(m.Mode))
	}
	if len(m.Snap) > 0 {
		e.bytesField(&w, "sn", m.Snap)
	}
	if m.Offset != 0 {
		w.Uint("of", m.Offset)
	}
	if m.Total != 0 {
		w.Uint("tt", m.Total)
	}
	if m.Reject {
		w.True("x")
	}
	if m.NewLeader {
		w.True("nl")
	}
	if m.Accepted {
		w.True("ac")
	}
	if m.Observer {
		w.True("ob")
	}
	if m.Established {
		w.True("es")
	}
	if len(m.Voters) > 0 {
		encodeIDs(&w, "vs", m.Voters)
	}
	if m.Change != 0 {
		w.Uint("ch", uint64(m.Change))
	}
	if m.Target != 0 {
		w.Uint("tg", uint64(m.Target))
	}
	if m.Code != 0 {
		w.Uint("cd", uint64(m.Code))
	}
	return w.Err
}

// encodeEntry writes e as reflection did: Zxid and Data always (nil Data
// as msgpack nil), Voters when set.
func encodeEntry(enc *msgpack.Encoder, en *zab.Entry, e *BatchEncoder) error {
	w := msgpackcheck.Writer{Enc: enc}
	w.Map(2 + msgpackcheck.Count(len(en.Voters) > 0))
	w.Uint("z", uint64(en.Zxid))
	e.bytesField(&w, "d", en.Data)
	if len(en.Voters) > 0 {
		encodeIDs(&w, "v", en.Voters)
	}
	return w.Err
}

// decodeMessage reads a message written by encodeMessage, or by reflection
// (any int width, fields in any order, nil as the zero value, unknown
// fields skipped, so a newer peer's additions are ignored). DecodeBatch
// checks the payload's structure first (msgpackcheck.Check).
func decodeMessage(dec *msgpack.Decoder, m *zab.Message) error {
	*m = zab.Message{}
	return msgpackcheck.Fields(dec, func(key []byte) error {
		var err error
		var u uint64
		switch string(key) {
		case "t":
			u, err = dec.DecodeUint64()
			m.Type = zab.MsgType(u)
		case "f":
			u, err = dec.DecodeUint64()
			m.From = zab.PeerID(u)
		case "o":
			u, err = dec.DecodeUint64()
			m.To = zab.PeerID(u)
		case "e":
			u, err = dec.DecodeUint64()
			m.Epoch = uint32(u)
		case "z":
			u, err = dec.DecodeUint64()
			m.Zxid = zab.Zxid(u)
		case "n":
			m.Entries, err = msgpackcheck.Slice(dec, func(e *zab.Entry) error { return decodeEntry(dec, e) })
		case "p":
			u, err = dec.DecodeUint64()
			m.Prev = zab.Zxid(u)
		case "c":
			u, err = dec.DecodeUint64()
			m.Commit = zab.Zxid(u)
		case "l":
			u, err = dec.DecodeUint64()
			m.Leader = zab.PeerID(u)
		case "r":
			m.Round, err = dec.DecodeUint64()
		case "s":
			u, err = dec.DecodeUint64()
			m.State = zab.Role(u)
		case "cu":
			u, err = dec.DecodeUint64()
			m.Current = uint32(u)
		case "cl":
			m.Cluster, err = dec.DecodeUint64()
		case "mb":
			m.Member, err = dec.DecodeBool()
		case "fx":
			m.Fixed, err = dec.DecodeBool()
		case "q":
			m.Seq, err = dec.DecodeUint64()
		case "i":
			m.ReqID, err = dec.DecodeUint64()
		case "is":
			m.ReqIDs, err = msgpackcheck.Slice(dec, func(id *uint64) (err error) {
				*id, err = dec.DecodeUint64()
				return err
			})
		case "in":
			m.Inc, err = dec.DecodeUint64()
		case "m":
			u, err = dec.DecodeUint64()
			m.Mode = zab.SyncMode(u)
		case "sn":
			m.Snap, err = dec.DecodeBytes()
		case "of":
			m.Offset, err = dec.DecodeUint64()
		case "tt":
			m.Total, err = dec.DecodeUint64()
		case "x":
			m.Reject, err = dec.DecodeBool()
		case "nl":
			m.NewLeader, err = dec.DecodeBool()
		case "ac":
			m.Accepted, err = dec.DecodeBool()
		case "ob":
			m.Observer, err = dec.DecodeBool()
		case "es":
			m.Established, err = dec.DecodeBool()
		case "vs":
			m.Voters, err = decodeIDs(dec)
		case "ch":
			u, err = dec.DecodeUint64()
			m.Change = zab.ConfChangeType(u)
		case "tg":
			u, err = dec.DecodeUint64()
			m.Target = zab.PeerID(u)
		case "cd":
			u, err = dec.DecodeUint64()
			m.Code = uint8(u)
		default:
			err = dec.Skip()
		}
		return err
	})
}

func decodeEntry(dec *msgpack.Decoder, e *zab.Entry) error {
	return msgpackcheck.Fields(dec, func(key []byte) error {
		var err error
		var u uint64
		switch string(key) {
		case "z":
			u, err = dec.DecodeUint64()
			e.Zxid = zab.Zxid(u)
		case "d":
			e.Data, err = dec.DecodeBytes()
		case "v":
			e.Voters, err = decodeIDs(dec)
		default:
			err = dec.Skip()
		}
		return err
	})
}

func decodeIDs(dec *msgpack.Decoder) ([]zab.PeerID, error) {
	return msgpackcheck.Slice(dec, func(id *zab.PeerID) error {
		u, err := dec.DecodeUint64()
		*id = zab.PeerID(u)
		return err
	})
}

// encodeIDs writes k and ids as an array of compact ints.
func encodeIDs(w *msgpackcheck.Writer, k string, ids []zab.PeerID) {
	if w.Key(k) {
		w.Err = w.Enc.EncodeArrayLen(len(ids))
	}
	for _, id := range ids {
		if w.Err == nil {
			w.Err = w.Enc.EncodeUint(uint64(id))
		}
	}
}
