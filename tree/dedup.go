package tree

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/coord-dev/coord/internal/msgpackcheck"
)

// DedupWindow is how long (in txn time, ms) the result of a txn with a ReqID
// is remembered at most. A retry whose first attempt's result may have been
// forgotten (by time or by maxDedup) fails with ErrRetryForgotten rather
// than applying twice, so the window bounds how long a retry can succeed,
// never what it may do.
const DedupWindow = int64(120_000)

// maxDedup bounds the remembered results whatever the write rate.
const maxDedup = 200_000

// dedupEntry is one remembered result. It keeps only what a retry is
// answered with, encoded (the snapshot form, a few dozen bytes for most
// writes) rather than as a Result with its error values and pointers.
type dedupEntry struct {
	id   uint64
	zxid int64
	time int64
	res  []byte // msgpack of resultRec, relative to zxid, time and the op (relStat, relPath)
}

// remember records the result of txn under its ReqID.
func (t *Tree) remember(txn *Txn, res Result) {
	e := &dedupEntry{id: txn.ReqID, zxid: txn.Zxid, time: txn.Time, res: t.resEnc.encode(res, txn.Zxid, txn.Time, &txn.Op)}
	if old := t.dedup[e.id]; old != nil {
		// Cannot happen (a remembered id answers as a duplicate); keep the
		// count of dead entries right if it did.
		t.digest -= dedupHash(old)
		t.dedupDead++
	}
	t.dedup[e.id] = e
	t.dedupOrder = append(t.dedupOrder, e)
	t.digest += dedupHash(e)
	if live := len(t.dedupOrder) - t.dedupDead; live > maxDedup {
		t.dropLive(live - maxDedup)
	}
}

// forget drops the remembered results of ids (Txn.Forget): their
// proposer will never retry them. An id not remembered is ignored. The
// entries stay in dedupOrder, dead (no longer in dedup), until expiry
// reaches them or compactDedup drops them; forgetting does not raise
// dedupFloor, which only a result a retry may still ask for moves.
func (t *Tree) forget(ids []uint64) {
	for _, id := range ids {
		if e := t.dedup[id]; e != nil {
			delete(t.dedup, id)
			t.digest -= dedupHash(e)
			t.dedupDead++
		}
	}
	if t.dedupDead > 1024 && t.dedupDead > len(t.dedupOrder)/2 {
		t.compactDedup()
	}
}

// live reports whether e is remembered (not forgotten nor replaced).
func (t *Tree) live(e *dedupEntry) bool { return t.dedup[e.id] == e }

// compactDedup removes the dead entries from dedupOrder. Entries are
// never changed once remembered (a running snapshot reads its copy of
// dedupOrder without the lock); only the slice is rewritten.
func (t *Tree) compactDedup() {
	if t.dedupDead == 0 {
		return
	}
	live := make([]*dedupEntry, 0, len(t.dedupOrder)-t.dedupDead+64)
	for _, e := range t.dedupOrder {
		if t.live(e) {
			live = append(live, e)
		}
	}
	t.dedupOrder, t.dedupDead = live, 0
}

// expireDedup forgets results older than DedupWindow before now.
func (t *Tree) expireDedup(now int64) {
	n := 0
	for n < len(t.dedupOrder) && now-t.dedupOrder[n].time > DedupWindow {
		n++
	}
	if n > 0 {
		t.dropDedup(n)
	}
}

// dropLive drops the oldest n live entries (and the dead ones among
// them).
func (t *Tree) dropLive(n int) {
	i := 0
	for ; i < len(t.dedupOrder) && n > 0; i++ {
		if t.live(t.dedupOrder[i]) {
			n--
		}
	}
	t.dropDedup(i)
}

// dropDedup drops the first n entries of dedupOrder: the live ones are
// forgotten (dedupFloor rises past them), the dead ones were already.
func (t *Tree) dropDedup(n int) {
	for _, e := range t.dedupOrder[:n] {
		if !t.live(e) {
			t.dedupDead--
			continue
		}
		t.dedupFloor = max(t.dedupFloor, e.zxid)
		delete(t.dedup, e.id)
		t.digest -= dedupHash(e)
	}
	clear(t.dedupOrder[:n])
	t.dedupOrder = t.dedupOrder[n:]
}

func dedupHash(e *dedupEntry) uint64 {
	h := fnvString(fnvOffset, "dedup")
	h = fnvUint64(h, e.id)
	h = fnvUint64(h, uint64(e.time))
	return mix64(h)
}

// dedupRec and resultRec are the snapshot form of the dedup table.
type dedupRec struct {
	ID   uint64             `msgpack:"i"`
	Zxid int64              `msgpack:"z,omitempty"` // 0 in snapshots that predate it
	Time int64              `msgpack:"t"`
	Res  msgpack.RawMessage `msgpack:"r"` // a resultRec, as dedupEntry keeps it
}

type resultRec struct {
	Type    OpType      `msgpack:"t"`
	Err     uint8       `msgpack:"e,omitempty"` // errCodes index; 0 = nil
	Path    string      `msgpack:"p,omitempty"`
	Stat    Stat        `msgpack:"s,omitempty"`
	Results []resultRec `msgpack:"x,omitempty"`
	Session int64       `msgpack:"se,omitempty"`
	// Rel says what is kept relative to the txn (snapshot version 2 on):
	// relStat, relPath, relData.
	Rel uint8 `msgpack:"rl,omitempty"`
}

// What a resultRec keeps relative to its txn, so a remembered result is a
// few bytes rather than five 9-byte zxids and times: a create's stat is
// then all zeros, a set's nearly so.
const (
	// relStat: Czxid, Mzxid and Pzxid are kept as the txn's zxid minus
	// them, Ctime and Mtime as the txn's time minus them.
	relStat = 1 << iota
	// relPath: Path is the op's path (a create that is not sequential),
	// not kept.
	relPath
	// relData: DataLength is kept as the op's data length minus it.
	relData
)

// relativize makes rec relative to the txn at zxid and time whose op (the
// one rec answers) is op, which may be nil (then the path is kept).
func relativize(rec *resultRec, zxid, time int64, op *Op) {
	if rec.Stat != (Stat{}) {
		s := &rec.Stat
		s.Czxid, s.Mzxid, s.Pzxid = zxid-s.Czxid, zxid-s.Mzxid, zxid-s.Pzxid
		s.Ctime, s.Mtime = time-s.Ctime, time-s.Mtime
		rec.Rel |= relStat
		if op != nil {
			s.DataLength = int32(len(op.Data)) - s.DataLength
			rec.Rel |= relData
		}
	}
	if op != nil && rec.Path != "" && rec.Path == op.Path {
		rec.Path = ""
		rec.Rel |= relPath
	}
	for i := range rec.Results {
		var sub *Op
		if op != nil && len(op.Ops) == len(rec.Results) {
			sub = &op.Ops[i]
		}
		relativize(&rec.Results[i], zxid, time, sub)
	}
}

// absolutize reverses relativize with the same zxid, time and op. A rec
// made relative to an op needs it back: with op nil (or of another shape)
// the answer is a forgotten result.
func absolutize(rec *resultRec, zxid, time int64, op *Op) error {
	if rec.Rel&relStat != 0 {
		s := &rec.Stat
		s.Czxid, s.Mzxid, s.Pzxid = zxid-s.Czxid, zxid-s.Mzxid, zxid-s.Pzxid
		s.Ctime, s.Mtime = time-s.Ctime, time-s.Mtime
	}
	if rec.Rel&(relPath|relData) != 0 && op == nil {
		return ErrRetryForgotten
	}
	if rec.Rel&relData != 0 {
		rec.Stat.DataLength = int32(len(op.Data)) - rec.Stat.DataLength
	}
	if rec.Rel&relPath != 0 {
		rec.Path = op.Path
	}
	rec.Rel = 0
	for i := range rec.Results {
		var sub *Op
		if op != nil && len(op.Ops) == len(rec.Results) {
			sub = &op.Ops[i]
		}
		if err := absolutize(&rec.Results[i], zxid, time, sub); err != nil {
			return err
		}
	}
	return nil
}

// errCodes numbers the errors a remembered result can carry, for snapshots.
// Append only: the numbers are on disk.
var errCodes = []error{nil, ErrNoNode, ErrNodeExists, ErrBadVersion, ErrNotEmpty,
	ErrNoChildrenForEphemerals, ErrInvalidPath, ErrDataTooLarge, ErrBadArguments,
	ErrSessionExpired, ErrRuntimeInconsistency, ErrNotEligible, ErrRequestTooLarge, ErrRetryForgotten}

func errCode(err error) uint8 {
	if err == nil {
		return 0
	}
	for i, e := range errCodes[1:] {
		if errors.Is(err, e) {
			return uint8(i + 1)
		}
	}
	return uint8(slices.Index(errCodes, ErrBadArguments))
}

func codeErr(c uint8) error {
	if int(c) < len(errCodes) {
		return errCodes[c]
	}
	return ErrBadArguments
}

// resultEncoder encodes remembered results. A Tree keeps one (guarded by
// its write lock) so a write costs one exact-size allocation for its
// result, not a fresh encoder and a buffer grown by doubling whose spare
// capacity dedup would keep alive for DedupWindow.
type resultEncoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

// encode is the compact form of r that dedup keeps: relative to the txn
// at zxid and time of op (see relativize; op nil keeps paths).
func (re *resultEncoder) encode(r Result, zxid, time int64, op *Op) []byte {
	if re.enc == nil {
		re.enc = msgpack.NewEncoder(&re.buf)
		// Arrays, not maps, and small ints small: a create's result in
		// some 50 bytes. The decoder takes either form (older snapshots
		// hold maps).
		re.enc.UseArrayEncodedStructs(true)
		re.enc.UseCompactInts(true)
	}
	re.buf.Reset()
	rec := toRec(r)
	relativize(&rec, zxid, time, op)
	if err := encodeResultRec(re.enc, &rec); err != nil {
		panic(fmt.Errorf("tree: encoding a result: %w", err)) // plain data: cannot happen
	}
	if re.buf.Cap() > 64<<10 {
		// A large Multi's result: do not keep its buffer.
		defer func() { re.buf = bytes.Buffer{} }()
	}
	return bytes.Clone(re.buf.Bytes())
}

// decodeResult reverses resultEncoder.encode for e, given the op of the
// retry that asks (a retry carries its first attempt's op). Bytes that do
// not decode (only a corrupt snapshot could hold them, and it is checked
// when read) answer as a forgotten result: the retry's outcome is unknown.
func decodeResult(e *dedupEntry, op *Op) Result {
	var rec resultRec
	if err := decodeResultRec(e.res, &rec); err != nil {
		return Result{Type: op.Type, Err: ErrRetryForgotten}
	}
	if err := absolutize(&rec, e.zxid, e.time, op); err != nil {
		return Result{Type: op.Type, Err: err}
	}
	return fromRec(rec)
}

func decodeResultRec(b []byte, rec *resultRec) error {
	if err := msgpackcheck.Check(b, 8); err != nil {
		return err
	}
	return msgpack.Unmarshal(b, rec)
}

func toRec(r Result) resultRec {
	rec := resultRec{Type: r.Type, Err: errCode(r.Err), Path: r.Path, Stat: r.Stat, Session: r.Session}
	for _, sub := range r.Results {
		rec.Results = append(rec.Results, toRec(sub))
	}
	return rec
}

func fromRec(rec resultRec) Result {
	r := Result{Type: rec.Type, Err: codeErr(rec.Err), Path: rec.Path, Stat: rec.Stat, Session: rec.Session}
	for _, sub := range rec.Results {
		r.Results = append(r.Results, fromRec(sub))
	}
	return r
}

// DedupLen is how many write results the tree remembers for retries now.
func (t *Tree) DedupLen() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.dedup)
}
