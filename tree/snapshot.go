package tree

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"slices"
	"strings"

	"github.com/coord-dev/coord/internal/msgpackcheck"
	"github.com/vmihailenco/msgpack/v5"
)

// Snapshot format, version 2 (version 1 is read too: its dedup results
// keep their stats and paths as they are, not relative to their txn):
//
//	magic   "COORDSNP" (8 bytes)
//	version uint16 big-endian
//	frames  each: uvarint length, then that many bytes of msgpack
//	        1. snapMeta
//	        2. snapMeta.Nodes snapNode frames, parents before children
//	crc     uint32 big-endian CRC32C of every byte above
//
// Frame lengths are bounded before anything is allocated, so corrupt or
// hostile input gives an error, never a panic or a huge allocation.

const (
	snapMagic   = "COORDSNP"
	snapVersion = 2
	// maxMetaFrame bounds the meta frame (mostly the session table).
	maxMetaFrame = 256 << 20
	// maxNodeFrame bounds a node's frame: its data, path and stat.
	maxNodeFrame = MaxDataLimit + MaxPathLen + 256
	// snapBatch is how many nodes the writer reads per hold of the read lock.
	snapBatch = 256
)

// ErrSnapshotTooLarge means WriteSnapshot refused to write a frame above
// what ReadSnapshot accepts: the snapshot would not be readable.
var ErrSnapshotTooLarge = errors.New("tree: snapshot frame too large")

// frameLimits are the most bytes a snapshot frame may take; the writer
// enforces what the reader accepts.
type frameLimits struct{ meta, node int }

var defaultFrameLimits = frameLimits{meta: maxMetaFrame, node: maxNodeFrame}

// ErrCorruptSnapshot means a snapshot could not be decoded: bad magic,
// unknown version, a frame that does not decode, a checksum or digest
// mismatch, or a tree that breaks the model's rules.
var ErrCorruptSnapshot = errors.New("tree: corrupt snapshot")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type snapMeta struct {
	Zxid     int64         `msgpack:"z"`
	Digest   uint64        `msgpack:"d"`
	Nodes    int64         `msgpack:"n"`
	Sessions []SessionInfo `msgpack:"s"`
	LastTime int64         `msgpack:"t"`
	Dedup    []dedupRec    `msgpack:"u,omitempty"`
	// DedupFloor is Tree.dedupFloor.
	DedupFloor int64 `msgpack:"uf,omitempty"`
}

// snapMetaOut is snapMeta as WriteSnapshot writes it: the dedup table is
// encoded straight from the tree's entries (dedupList), not through a
// []dedupRec built and encoded by reflection — at maxDedup entries that
// was most of a snapshot's cost.
type snapMetaOut struct {
	Zxid       int64         `msgpack:"z"`
	Digest     uint64        `msgpack:"d"`
	Nodes      int64         `msgpack:"n"`
	Sessions   []SessionInfo `msgpack:"s"`
	LastTime   int64         `msgpack:"t"`
	Dedup      dedupList     `msgpack:"u,omitempty"`
	DedupFloor int64         `msgpack:"uf,omitempty"`
}

// dedupList encodes as a []dedupRec does.
type dedupList []*dedupEntry

// EncodeMsgpack writes each entry as the map of a dedupRec.
func (l dedupList) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeArrayLen(len(l)); err != nil {
		return err
	}
	for _, e := range l {
		err := errors.Join(enc.EncodeMapLen(4),
			enc.EncodeString("i"), enc.EncodeUint(e.id),
			enc.EncodeString("z"), enc.EncodeInt(e.zxid),
			enc.EncodeString("t"), enc.EncodeInt(e.time),
			enc.EncodeString("r"), msgpack.RawMessage(e.res).EncodeMsgpack(enc))
		if err != nil {
			return err
		}
	}
	return nil
}

// snapNode is one znode in a snapshot: a msgpack array of its fields in
// order, ints at their type's full width, as the library's reflection
// wrote it from the as_array tag. EncodeMsgpack and DecodeMsgpack do that
// by hand (a snapshot and a restore of 100,000 znodes spent about a third
// of their time in reflection); TestSnapNodeCodecMatchesReflection holds
// them to the same bytes.
type snapNode struct {
	_msgpack struct{} `msgpack:",as_array"`
	Path     string
	Czxid    int64
	Mzxid    int64
	Pzxid    int64
	Ctime    int64
	Mtime    int64
	Owner    int64
	Version  int32
	Cversion int32
	Data     string
}

// snapNodeFields is the length of a snapNode's array.
const snapNodeFields = 10

// EncodeMsgpack writes r as reflection did (msgpack.CustomEncoder).
func (r *snapNode) EncodeMsgpack(enc *msgpack.Encoder) error {
	return errors.Join(enc.EncodeArrayLen(snapNodeFields), enc.EncodeString(r.Path),
		enc.EncodeInt64(r.Czxid), enc.EncodeInt64(r.Mzxid), enc.EncodeInt64(r.Pzxid),
		enc.EncodeInt64(r.Ctime), enc.EncodeInt64(r.Mtime), enc.EncodeInt64(r.Owner),
		enc.EncodeInt32(r.Version), enc.EncodeInt32(r.Cversion), enc.EncodeString(r.Data))
}

// DecodeMsgpack reads r as reflection did (msgpack.CustomDecoder): nil or
// an empty array as the zero node, any other length an error, ints of any
// width (an int32 field keeps the low bits, as reflect.Value.SetInt), nil
// as "". Unlike reflection it takes no node written as a map, which no
// version wrote.
func (r *snapNode) DecodeMsgpack(dec *msgpack.Decoder) error {
	*r = snapNode{}
	n, err := dec.DecodeArrayLen()
	switch {
	case err != nil || n <= 0:
		return err
	case n != snapNodeFields:
		return fmt.Errorf("%w: a node of %d fields, want %d", ErrCorruptSnapshot, n, snapNodeFields)
	}
	if r.Path, err = dec.DecodeString(); err != nil {
		return err
	}
	var version, cversion int64
	for _, p := range [...]*int64{&r.Czxid, &r.Mzxid, &r.Pzxid, &r.Ctime, &r.Mtime, &r.Owner, &version, &cversion} {
		if *p, err = dec.DecodeInt64(); err != nil {
			return err
		}
	}
	if r.Data, err = dec.DecodeString(); err != nil {
		return err
	}
	r.Version, r.Cversion = int32(version), int32(cversion)
	return nil
}

// snapState is a running snapshot's view of the tree as of zxid: the first
// change after zxid to any node saves the node's state at zxid in pre, so
// the writer sees the tree exactly as it was while Apply goes on.
type snapState struct {
	zxid int64
	pre  map[*node]*node
}

// preserve saves n's state as of the running snapshot's zxid before n is
// changed for the first time since. Caller holds mu for writing.
func (t *Tree) preserve(n *node) {
	s := t.snap
	if s == nil || n.lastChange() > s.zxid {
		return
	}
	if _, ok := s.pre[n]; ok {
		return
	}
	c := *n
	c.kids = nil
	c.setChildren(slices.Clone(n.children()))
	s.pre[n] = &c
}

// WriteSnapshot writes the whole tree, as of the moment it is called, to w
// and returns the zxid it reflects. Apply is not held up beyond brief lock
// hand-offs: changes made while the snapshot is written are not in it (it is
// a point-in-time image, stronger than ZooKeeper's fuzzy snapshot), so the
// snapshot plus the txns after the returned zxid rebuild the live tree.
// Snapshots are taken one at a time.
func (t *Tree) WriteSnapshot(w io.Writer) (int64, error) {
	t.snapMu.Lock()
	defer t.snapMu.Unlock()

	t.mu.Lock()
	s := &snapState{zxid: t.lastZxid, pre: make(map[*node]*node)}
	t.snap = s
	meta := snapMeta{Zxid: t.lastZxid, Digest: t.digest, Nodes: int64(t.count), LastTime: t.lastTime}
	for id, ss := range t.sessions {
		meta.Sessions = append(meta.Sessions, SessionInfo{ID: id, Timeout: ss.timeout})
	}
	// Entries never change once remembered: copy the pointers of the live
	// ones under the lock (a memmove), build the records after it, so
	// Apply is not held up for the whole table (up to maxDedup entries).
	t.compactDedup()
	dedup := slices.Clone(t.dedupOrder)
	meta.DedupFloor = t.dedupFloor
	t.mu.Unlock()
	out := snapMetaOut{Zxid: meta.Zxid, Digest: meta.Digest, Nodes: meta.Nodes, LastTime: meta.LastTime,
		DedupFloor: meta.DedupFloor, Dedup: dedup}
	defer func() {
		t.mu.Lock()
		t.snap = nil
		t.mu.Unlock()
	}()
	slices.SortFunc(meta.Sessions, func(a, b SessionInfo) int { return cmpInt64(a.ID, b.ID) })
	out.Sessions = meta.Sessions

	sw := newSnapWriter(w)
	sw.header()
	sw.buf.Grow(len(dedup)*64 + len(meta.Sessions)*16)
	sw.frame(&out, t.limits.meta)
	sw.flush()

	type item struct {
		path string
		n    *node
	}
	stack := []item{{"/", t.root}}
	var rec snapNode
	for len(stack) > 0 && sw.err == nil {
		t.mu.RLock()
		for b := 0; b < snapBatch && len(stack) > 0; b++ {
			it := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			n := it.n
			if f, ok := s.pre[n]; ok {
				n = f
			}
			rec = snapNode{Path: it.path, Czxid: n.czxid, Mzxid: n.mzxid, Pzxid: n.pzxid,
				Ctime: n.ctime, Mtime: n.mtime, Owner: n.owner,
				Version: n.version, Cversion: n.cversion, Data: n.data}
			sw.frame(&rec, t.limits.node)
			// Pushed in reverse, children pop in sorted order, so equal
			// trees give identical snapshot bytes.
			kids := n.children()
			for i := len(kids) - 1; i >= 0; i-- {
				c := kids[i]
				stack = append(stack, item{joinPath(it.path, c.name), c})
			}
		}
		t.mu.RUnlock()
		// Written outside the lock: a slow writer must not hold up Apply.
		sw.flush()
	}
	sw.trailer()
	if sw.err != nil {
		return 0, fmt.Errorf("tree: write snapshot: %w", sw.err)
	}
	return meta.Zxid, nil
}

// snapWriter encodes frames into a batch in memory and writes each batch
// to the destination, keeping the running checksum.
type snapWriter struct {
	w     io.Writer
	crc   hash.Hash32
	batch []byte
	buf   bytes.Buffer
	enc   *msgpack.Encoder
	err   error
}

func newSnapWriter(w io.Writer) *snapWriter {
	sw := &snapWriter{w: w, crc: crc32.New(castagnoli)}
	sw.enc = msgpack.NewEncoder(&sw.buf)
	return sw
}

func (sw *snapWriter) header() {
	sw.batch = append(sw.batch, snapMagic...)
	sw.batch = binary.BigEndian.AppendUint16(sw.batch, snapVersion)
}

// frame encodes v as one frame of at most limit bytes.
func (sw *snapWriter) frame(v any, limit int) {
	if sw.err != nil {
		return
	}
	sw.buf.Reset()
	if err := sw.enc.Encode(v); err != nil {
		sw.err = err
		return
	}
	if sw.buf.Len() > limit {
		sw.err = fmt.Errorf("%w: %d bytes, the reader's limit is %d", ErrSnapshotTooLarge, sw.buf.Len(), limit)
		return
	}
	sw.batch = binary.AppendUvarint(sw.batch, uint64(sw.buf.Len()))
	if sw.buf.Len() > 64<<10 {
		// A large frame (the meta frame of a big dedup table) goes out
		// as it is rather than copied into the batch.
		sw.flush()
		if sw.err == nil {
			sw.crc.Write(sw.buf.Bytes())
			_, sw.err = sw.w.Write(sw.buf.Bytes())
		}
		return
	}
	sw.batch = append(sw.batch, sw.buf.Bytes()...)
}

func (sw *snapWriter) flush() {
	if sw.err == nil && len(sw.batch) > 0 {
		sw.crc.Write(sw.batch)
		_, sw.err = sw.w.Write(sw.batch)
	}
	sw.batch = sw.batch[:0]
}

func (sw *snapWriter) trailer() {
	sw.flush()
	if sw.err == nil {
		_, sw.err = sw.w.Write(binary.BigEndian.AppendUint32(nil, sw.crc.Sum32()))
	}
}

// ReadSnapshot decodes a snapshot written by WriteSnapshot into a new tree
// with the given options. It checks the format, every frame, the checksum,
// the node count, the model's rules (parents before children, no children
// of ephemerals, ephemerals owned by known sessions, data within the limit)
// and the digest; any failure wraps ErrCorruptSnapshot (or the read error).
func ReadSnapshot(r io.Reader, opts Options) (*Tree, error) {
	return readSnapshotLimited(r, opts, defaultFrameLimits)
}

func readSnapshotLimited(r io.Reader, opts Options, limits frameLimits) (*Tree, error) {
	t := New(opts)
	t.limits = limits
	sr := &snapReader{r: bufio.NewReaderSize(r, 64<<10), crc: crc32.New(castagnoli)}
	if err := t.readSnapshot(sr); err != nil {
		return nil, err
	}
	return t, nil
}

type snapReader struct {
	r   *bufio.Reader
	crc hash.Hash32
	buf bytes.Buffer
	dec *msgpack.Decoder
	rd  bytes.Reader
	// lr and one are frame's and byteReader's, kept here so a frame
	// allocates nothing of its own.
	lr  io.LimitedReader
	one [1]byte
}

func (sr *snapReader) readFull(b []byte) error {
	if _, err := io.ReadFull(sr.r, b); err != nil {
		return truncated(err)
	}
	sr.crc.Write(b)
	return nil
}

// frame reads one frame of at most limit bytes and decodes it into v.
func (sr *snapReader) frame(limit int, v any) error {
	n, err := binary.ReadUvarint(byteReader{sr})
	if err != nil {
		return truncated(err)
	}
	if n > uint64(limit) {
		return fmt.Errorf("%w: frame of %d bytes exceeds limit %d", ErrCorruptSnapshot, n, limit)
	}
	sr.buf.Reset()
	// Grow with the data actually read, not with the declared length
	// (io.CopyN, without its LimitedReader on the heap).
	sr.lr = io.LimitedReader{R: sr.r, N: int64(n)}
	if got, err := sr.buf.ReadFrom(&sr.lr); err != nil || got < int64(n) {
		return truncated(cmp.Or(err, io.EOF))
	}
	sr.crc.Write(sr.buf.Bytes())
	if err := msgpackcheck.Check(sr.buf.Bytes(), 8); err != nil {
		return fmt.Errorf("%w: %v", ErrCorruptSnapshot, err)
	}
	sr.rd.Reset(sr.buf.Bytes())
	if sr.dec == nil {
		sr.dec = msgpack.NewDecoder(&sr.rd)
	} else {
		sr.dec.Reset(&sr.rd)
	}
	if err := sr.dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrCorruptSnapshot, err)
	}
	if sr.rd.Len() != 0 {
		return fmt.Errorf("%w: %d stray bytes in frame", ErrCorruptSnapshot, sr.rd.Len())
	}
	return nil
}

// byteReader feeds the uvarint decoder while keeping the checksum.
type byteReader struct{ sr *snapReader }

func (b byteReader) ReadByte() (byte, error) {
	c, err := b.sr.r.ReadByte()
	if err == nil {
		b.sr.one[0] = c
		b.sr.crc.Write(b.sr.one[:])
	}
	return c, err
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated", ErrCorruptSnapshot)
	}
	return fmt.Errorf("tree: read snapshot: %w", err)
}

func (t *Tree) readSnapshot(sr *snapReader) error {
	var hdr [len(snapMagic) + 2]byte
	if err := sr.readFull(hdr[:]); err != nil {
		return err
	}
	if string(hdr[:len(snapMagic)]) != snapMagic {
		return fmt.Errorf("%w: bad magic %q", ErrCorruptSnapshot, hdr[:len(snapMagic)])
	}
	version := binary.BigEndian.Uint16(hdr[len(snapMagic):])
	if version != 1 && version != snapVersion {
		return fmt.Errorf("%w: unsupported version %d", ErrCorruptSnapshot, version)
	}
	var meta snapMeta
	if err := sr.frame(t.limits.meta, &meta); err != nil {
		return err
	}
	if meta.Nodes < 1 || meta.Zxid < 0 {
		return fmt.Errorf("%w: meta says %d nodes at zxid %d", ErrCorruptSnapshot, meta.Nodes, meta.Zxid)
	}
	for _, s := range meta.Sessions {
		if s.ID <= 0 || s.Timeout <= 0 {
			return fmt.Errorf("%w: session %d with timeout %d", ErrCorruptSnapshot, s.ID, s.Timeout)
		}
		if _, dup := t.sessions[s.ID]; dup {
			return fmt.Errorf("%w: session %d twice", ErrCorruptSnapshot, s.ID)
		}
		t.sessions[s.ID] = &sessionState{timeout: s.Timeout, ephemerals: make(map[string]struct{})}
	}
	if meta.DedupFloor < 0 || meta.DedupFloor > meta.Zxid {
		return fmt.Errorf("%w: dedup floor %d at zxid %d", ErrCorruptSnapshot, meta.DedupFloor, meta.Zxid)
	}
	t.dedupFloor = meta.DedupFloor
	for i, d := range meta.Dedup {
		if d.ID == 0 || t.dedup[d.ID] != nil || (i > 0 && d.Time < meta.Dedup[i-1].Time) || d.Zxid < 0 || d.Zxid > meta.Zxid {
			return fmt.Errorf("%w: dedup entry %d", ErrCorruptSnapshot, i)
		}
		if d.Zxid == 0 {
			d.Zxid = meta.Zxid // older snapshots: at most the snapshot's zxid
		}
		var rec resultRec
		if err := decodeResultRec(d.Res, &rec); err != nil {
			return fmt.Errorf("%w: dedup entry %d: %v", ErrCorruptSnapshot, i, err)
		}
		e := &dedupEntry{id: d.ID, zxid: d.Zxid, time: d.Time}
		if version == 1 || rec.Rel&^(relStat|relPath|relData) != 0 {
			// Re-encoded in the compact, relative form (paths kept: the
			// op is not known here). A version 2 result with flags this
			// code does not know answers a retry as forgotten.
			if version > 1 {
				rec = resultRec{Type: rec.Type, Err: errCode(ErrRetryForgotten)}
			}
			e.res = t.resEnc.encode(fromRec(rec), d.Zxid, d.Time, nil)
		} else {
			e.res = bytes.Clone(d.Res)
		}
		t.dedup[d.ID] = e
		t.dedupOrder = append(t.dedupOrder, e)
	}
	var rec snapNode // one for all: frame's interface would move each to the heap
	for i := int64(0); i < meta.Nodes; i++ {
		if err := sr.frame(t.limits.node, &rec); err != nil {
			return err
		}
		if err := t.restoreNode(&rec, i == 0); err != nil {
			return err
		}
	}
	var crc [4]byte
	sum := sr.crc.Sum32()
	if _, err := io.ReadFull(sr.r, crc[:]); err != nil {
		return truncated(err)
	}
	if got := binary.BigEndian.Uint32(crc[:]); got != sum {
		return fmt.Errorf("%w: checksum %08x, computed %08x", ErrCorruptSnapshot, got, sum)
	}
	t.lastZxid, t.lastTime = meta.Zxid, meta.LastTime
	t.digest = t.computeDigest()
	if t.digest != meta.Digest {
		return fmt.Errorf("%w: digest %016x, computed %016x", ErrCorruptSnapshot, meta.Digest, t.digest)
	}
	return nil
}

func (t *Tree) restoreNode(rec *snapNode, first bool) error {
	if len(rec.Data) > MaxDataLimit {
		return fmt.Errorf("%w: %s has %d bytes of data, limit %d", ErrCorruptSnapshot, rec.Path, len(rec.Data), MaxDataLimit)
	}
	n := &node{czxid: rec.Czxid, mzxid: rec.Mzxid, pzxid: rec.Pzxid, ctime: rec.Ctime, mtime: rec.Mtime,
		owner: rec.Owner, version: rec.Version, cversion: rec.Cversion, data: rec.Data}
	if first {
		if rec.Path != "/" || rec.Owner != 0 {
			return fmt.Errorf("%w: first node is %q, not the root", ErrCorruptSnapshot, rec.Path)
		}
		t.root = n
		return nil
	}
	if err := ValidatePath(rec.Path); err != nil || rec.Path == "/" {
		return fmt.Errorf("%w: node path %q", ErrCorruptSnapshot, rec.Path)
	}
	if n.isTTL() && (n.ttl() <= 0 || n.ttl() > MaxTTL) {
		return fmt.Errorf("%w: %s has TTL %d", ErrCorruptSnapshot, rec.Path, n.ttl())
	}
	if n.owner < 0 && !n.isTTL() && !n.isContainer() {
		return fmt.Errorf("%w: %s has owner %d", ErrCorruptSnapshot, rec.Path, n.owner)
	}
	if n.isEphemeral() && t.sessions[n.owner] == nil {
		return fmt.Errorf("%w: ephemeral %s of unknown session 0x%x", ErrCorruptSnapshot, rec.Path, n.owner)
	}
	parentPath, name := splitPath(rec.Path)
	parent := t.lookup(parentPath)
	switch {
	case parent == nil:
		return fmt.Errorf("%w: %s comes before its parent", ErrCorruptSnapshot, rec.Path)
	case parent.isEphemeral():
		return fmt.Errorf("%w: %s is a child of an ephemeral", ErrCorruptSnapshot, rec.Path)
	}
	n.name = strings.Clone(name)
	if !parent.addChild(n) {
		return fmt.Errorf("%w: %s twice", ErrCorruptSnapshot, rec.Path)
	}
	t.count++
	t.index(rec.Path, n)
	return nil
}

// computeDigest hashes the whole tree from scratch.
func (t *Tree) computeDigest() uint64 {
	var d uint64
	var walk func(path []byte, n *node)
	walk = func(path []byte, n *node) {
		d += nodeHashFrom(fnvBytes(fnvOffset, path), n)
		for _, ch := range n.children() {
			p := path
			if len(p) > 1 {
				p = append(p, '/')
			}
			walk(append(p, ch.name...), ch)
		}
	}
	walk(append(make([]byte, 0, 256), '/'), t.root)
	for id, s := range t.sessions {
		d += sessionHash(id, s.timeout)
	}
	for _, e := range t.dedupOrder {
		if t.live(e) {
			d += dedupHash(e)
		}
	}
	return d
}
