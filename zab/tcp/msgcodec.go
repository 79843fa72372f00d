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

// fieldWriter writes map entries and keeps the first error.
type fieldWriter struct {
	enc *msgpack.Encoder
	err error
}

func (w *fieldWriter) key(k string) bool {
	if w.err == nil {
		w.err = w.enc.EncodeString(k)
	}
	return w.err == nil
}

func (w *fieldWriter) uint(k string, v uint64) {
	if w.key(k) {
		w.err = w.enc.EncodeUint(v)
	}
}

func (w *fieldWriter) bool(k string) {
	if w.key(k) {
		w.err = w.enc.EncodeBool(true)
	}
}

func (w *fieldWriter) bytes(k string, v []byte) {
	if w.key(k) {
		w.err = w.enc.EncodeBytes(v)
	}
}

func (w *fieldWriter) ids(k string, v []zab.PeerID) {
	if w.key(k) {
		w.err = w.enc.EncodeArrayLen(len(v))
	}
	for _, id := range v {
		if w.err == nil {
			w.err = w.enc.EncodeUint(uint64(id))
		}
	}
}

func count(set ...bool) int {
	n := 0
	for _, s := range set {
		if s {
			n++
		}
	}
	return n
}

// encodeMessage writes m as reflection did with compact ints.
func encodeMessage(enc *msgpack.Encoder, m *zab.Message) error {
	w := fieldWriter{enc: enc}
	w.err = enc.EncodeMapLen(3 + count(m.Epoch != 0, m.Zxid != 0, len(m.Entries) > 0, m.Prev != 0,
		m.Commit != 0, m.Leader != 0, m.Round != 0, m.State != 0, m.Current != 0, m.Cluster != 0,
		m.Member, m.Fixed, m.Seq != 0, m.ReqID != 0, len(m.ReqIDs) > 0, m.Inc != 0, m.Mode != 0,
		len(m.Snap) > 0, m.Offset != 0, m.Total != 0, m.Reject, m.NewLeader, m.Accepted,
		m.Observer, m.Established, len(m.Voters) > 0, m.Change != 0, m.Target != 0, m.Code != 0))
	w.uint("t", uint64(m.Type))
	w.uint("f", uint64(m.From))
	w.uint("o", uint64(m.To))
	if m.Epoch != 0 {
		w.uint("e", uint64(m.Epoch))
	}
	if m.Zxid != 0 {
		w.uint("z", uint64(m.Zxid))
	}
	if len(m.Entries) > 0 && w.key("n") {
		w.err = enc.EncodeArrayLen(len(m.Entries))
		for i := range m.Entries {
			if w.err == nil {
				w.err = encodeEntry(enc, &m.Entries[i])
			}
		}
	}
	if m.Prev != 0 {
		w.uint("p", uint64(m.Prev))
	}
	if m.Commit != 0 {
		w.uint("c", uint64(m.Commit))
	}
	if m.Leader != 0 {
		w.uint("l", uint64(m.Leader))
	}
	if m.Round != 0 {
		w.uint("r", m.Round)
	}
	if m.State != 0 {
		w.uint("s", uint64(m.State))
	}
	if m.Current != 0 {
		w.uint("cu", uint64(m.Current))
	}
	if m.Cluster != 0 {
		w.uint("cl", m.Cluster)
	}
	if m.Member {
		w.bool("mb")
	}
	if m.Fixed {
		w.bool("fx")
	}
	if m.Seq != 0 {
		w.uint("q", m.Seq)
	}
	if m.ReqID != 0 {
		w.uint("i", m.ReqID)
	}
	if len(m.ReqIDs) > 0 && w.key("is") {
		w.err = enc.EncodeArrayLen(len(m.ReqIDs))
		for _, id := range m.ReqIDs {
			if w.err == nil {
				w.err = enc.EncodeUint(id)
			}
		}
	}
	if m.Inc != 0 {
		w.uint("in", m.Inc)
	}
	if m.Mode != 0 {
		w.uint("m", uint64(m.Mode))
	}
	if len(m.Snap) > 0 {
		w.bytes("sn", m.Snap)
	}
	if m.Offset != 0 {
		w.uint("of", m.Offset)
	}
	if m.Total != 0 {
		w.uint("tt", m.Total)
	}
	if m.Reject {
		w.bool("x")
	}
	if m.NewLeader {
		w.bool("nl")
	}
	if m.Accepted {
		w.bool("ac")
	}
	if m.Observer {
		w.bool("ob")
	}
	if m.Established {
		w.bool("es")
	}
	if len(m.Voters) > 0 {
		w.ids("vs", m.Voters)
	}
	if m.Change != 0 {
		w.uint("ch", uint64(m.Change))
	}
	if m.Target != 0 {
		w.uint("tg", uint64(m.Target))
	}
	if m.Code != 0 {
		w.uint("cd", uint64(m.Code))
	}
	return w.err
}

// encodeEntry writes e as reflection did: Zxid and Data always (nil Data
// as msgpack nil), Voters when set.
func encodeEntry(enc *msgpack.Encoder, e *zab.Entry) error {
	w := fieldWriter{enc: enc}
	w.err = enc.EncodeMapLen(2 + count(len(e.Voters) > 0))
	w.uint("z", uint64(e.Zxid))
	w.bytes("d", e.Data)
	if len(e.Voters) > 0 {
		w.ids("v", e.Voters)
	}
	return w.err
}

// decodeMessage reads a message written by encodeMessage, or by reflection
// (any int width, fields in any order, nil as the zero value, unknown
// fields skipped, so a newer peer's additions are ignored). DecodeBatch
// checks the payload's structure first (msgpackcheck), so no declared
// length here is larger than the bytes that hold it.
func decodeMessage(dec *msgpack.Decoder, m *zab.Message) error {
	*m = zab.Message{}
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
			m.Entries, err = decodeEntries(dec)
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
			m.ReqIDs, err = decodeUints(dec)
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
		if err != nil {
			return err
		}
	}
	return nil
}

func decodeEntries(dec *msgpack.Decoder) ([]zab.Entry, error) {
	n, err := dec.DecodeArrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	ents := make([]zab.Entry, n) // n ≤ the bytes left: DecodeBatch checked
	for i := range ents {
		if err := decodeEntry(dec, &ents[i]); err != nil {
			return nil, err
		}
	}
	return ents, nil
}

func decodeEntry(dec *msgpack.Decoder, e *zab.Entry) error {
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
		if err != nil {
			return err
		}
	}
	return nil
}

func decodeUints(dec *msgpack.Decoder) ([]uint64, error) {
	n, err := dec.DecodeArrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	out := make([]uint64, n)
	for i := range out {
		if out[i], err = dec.DecodeUint64(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func decodeIDs(dec *msgpack.Decoder) ([]zab.PeerID, error) {
	n, err := dec.DecodeArrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	out := make([]zab.PeerID, n)
	for i := range out {
		u, err := dec.DecodeUint64()
		if err != nil {
			return nil, err
		}
		out[i] = zab.PeerID(u)
	}
	return out, nil
}
