package zab

// MsgType says what a Message is for.
type MsgType uint8

// Entry is one proposed transaction: its zxid and the opaque bytes the state
// machine applies. zab never interprets Data.
type Entry struct {
	Zxid Zxid   `msgpack:"z"`
	Data []byte `msgpack:"d"`
}

// Message is the single frame type exchanged between peers. It is a flat
// struct (like raftpb.Message) so the wire format stays one versioned msgpack
// shape; each MsgType documents which fields it uses.
type Message struct {
	Type MsgType `msgpack:"t"`
	From PeerID  `msgpack:"f"`
	To   PeerID  `msgpack:"o"`
	// Epoch is the sender's epoch context for the message (accepted or current
	// epoch, depending on Type).
	Epoch uint32 `msgpack:"e,omitempty"`
	// Zxid is the main zxid the message talks about (last zxid, proposal zxid,
	// acknowledged or committed zxid, ...).
	Zxid    Zxid    `msgpack:"z,omitempty"`
	Entries []Entry `msgpack:"n,omitempty"`
}
