package coord

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/coord-dev/coord/internal/msgpackcheck"
	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
)

// Backup errors.
var (
	// ErrBadBackup is wrapped by ReadBackup and Restore for bytes that are
	// not a complete, intact backup: a wrong header, a bad frame, a
	// checksum mismatch, a truncated stream or a damaged image.
	ErrBadBackup = errors.New("coord: not an intact backup")
	// ErrBackupConfigLost is wrapped by Backup when the voter configuration
	// in force at the image's zxid left the log while the image was being
	// written (a snapshot compacted it). Try again.
	ErrBackupConfigLost = errors.New("coord: voter configuration of the backup no longer known")
)

// BackupInfo describes a backup.
type BackupInfo struct {
	// Zxid is the last txn the backup holds: it has every change up to
	// Zxid and nothing after.
	Zxid int64
	// Voters is the voter configuration in force at Zxid in the cluster
	// that was backed up.
	Voters []uint64
	// Cluster and NodeID name the node that took the backup.
	Cluster string
	NodeID  uint64
	// Time is when the backup was taken, by the taking node's clock.
	Time time.Time
	// Znodes is how many znodes the backup holds. ReadBackup and Restore,
	// which decode the image, set it; Backup leaves it zero.
	Znodes int
	// Size is the backup's length in bytes, and SHA256 the hex checksum
	// that ends it (over every byte before it).
	Size   int64
	SHA256 string
}

// Backup format, version 1 (big endian):
//
//	magic "coordbak", version uint32
//	frames: kind byte, length uint32, payload
//	  'D'  a piece of the tree snapshot (1..backupMaxChunk bytes), any number
//	  'I'  backupMeta in msgpack (at most backupMaxMeta bytes), once, after every 'D'
//	  'S'  SHA-256 of every byte before this frame (32 bytes), last
//
// The tree snapshot (tree.WriteSnapshot) carries its own checksum and
// digest, which ReadBackup and Restore also check.
const (
	backupMagic    = "coordbak"
	backupVersion  = 1
	backupMaxChunk = 1 << 20
	backupMaxMeta  = 64 << 10
	backupChunk    = 256 << 10 // what Backup writes
	frameData      = 'D'
	frameMeta      = 'I'
	frameSum       = 'S'
)

// backupMeta is the 'I' frame.
type backupMeta struct {
	Zxid    int64    `msgpack:"z"`
	Voters  []uint64 `msgpack:"v"`
	Cluster string   `msgpack:"c"`
	NodeID  uint64   `msgpack:"n"`
	Time    int64    `msgpack:"t"` // Unix nanoseconds
}

// backupWriter frames and hashes a backup as it is written.
type backupWriter struct {
	ctx  context.Context
	w    io.Writer
	h    hash.Hash
	buf  []byte // pending tree bytes, up to backupChunk
	size int64
	err  error
}

func (bw *backupWriter) raw(p []byte) {
	if bw.err != nil {
		return
	}
	if bw.err = bw.ctx.Err(); bw.err != nil {
		return
	}
	var n int
	n, bw.err = bw.w.Write(p)
	bw.h.Write(p[:n])
	bw.size += int64(n)
}

func (bw *backupWriter) frame(kind byte, payload []byte) {
	var hdr [5]byte
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	bw.raw(hdr[:])
	bw.raw(payload)
}

// Write takes tree snapshot bytes and emits them as 'D' frames.
func (bw *backupWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && bw.err == nil {
		k := min(len(p), backupChunk-len(bw.buf))
		bw.buf = append(bw.buf, p[:k]...)
		p = p[k:]
		if len(bw.buf) == backupChunk {
			bw.flush()
		}
	}
	if bw.err != nil {
		return 0, bw.err
	}
	return n, nil
}

func (bw *backupWriter) flush() {
	if len(bw.buf) > 0 {
		bw.frame(frameData, bw.buf)
		bw.buf = bw.buf[:0]
	}
}

// Backup writes a consistent image of the whole znode tree to w, with the
// zxid it reflects and the voter configuration in force there, while writes
// go on: the image is a point-in-time copy of the local replica (Apply is
// held up only by brief lock hand-offs, not by w), and the txns committed
// after it are not in it. Take it on any node; Sync first if it must hold
// everything committed before the call. The bytes end with a SHA-256
// checksum that ReadBackup and Restore verify. Backups are taken one at a
// time per node, in turn with the node's own snapshots, so a slow w delays
// those (not replication). ctx ends a backup in progress (it is checked
// before each write to w; a write that blocks is not interrupted); w then
// holds an incomplete backup, which Restore refuses.
func (n *Node) Backup(ctx context.Context, w io.Writer) (BackupInfo, error) {
	if err := n.usable(); err != nil {
		return BackupInfo{}, err
	}
	start := time.Now()
	return writeBackup(ctx, w, n.tree, func(z int64) (backupMeta, error) {
		voters, err := n.votersAt(zab.Zxid(z))
		return backupMeta{Zxid: z, Voters: voters, Cluster: n.cfg.Cluster, NodeID: n.cfg.NodeID, Time: start.UnixNano()}, err
	})
}

// writeBackup writes a backup of t to w; meta describes the image at the
// zxid it reflects.
func writeBackup(ctx context.Context, w io.Writer, t *tree.Tree, meta func(z int64) (backupMeta, error)) (BackupInfo, error) {
	bw := &backupWriter{ctx: ctx, w: w, h: sha256.New(), buf: make([]byte, 0, backupChunk)}
	bw.raw(binary.BigEndian.AppendUint32([]byte(backupMagic), backupVersion))
	if bw.err != nil {
		return BackupInfo{}, fmt.Errorf("coord: backup: %w", bw.err)
	}
	z, err := t.WriteSnapshot(bw)
	bw.flush()
	if err == nil {
		err = bw.err
	}
	if err != nil {
		return BackupInfo{}, fmt.Errorf("coord: backup: %w", err)
	}
	m, err := meta(z)
	if err != nil {
		return BackupInfo{}, err
	}
	mb, err := msgpack.Marshal(&m)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("coord: backup: %w", err)
	}
	bw.frame(frameMeta, mb)
	sum := bw.h.Sum(nil)
	bw.frame(frameSum, sum)
	if bw.err != nil {
		return BackupInfo{}, fmt.Errorf("coord: backup: %w", bw.err)
	}
	info := m.info()
	info.Size, info.SHA256 = bw.size, hex.EncodeToString(sum)
	return info, nil
}

// votersAt returns the voter configuration in force at z, a zxid this node
// has applied.
func (n *Node) votersAt(z zab.Zxid) ([]uint64, error) {
	st := n.zab.Status()
	ids := st.Voters
	if st.ConfigZxid > z {
		// The configuration now in force was logged after z (or came with
		// a snapshot after it): the log still knows the one before,
		// unless a snapshot compacted it meanwhile.
		var err error
		if ids, err = n.zab.VotersAt(z); err != nil {
			return nil, fmt.Errorf("%w: at %v: %w", ErrBackupConfigLost, z, err)
		}
	}
	out := make([]uint64, len(ids))
	for i, id := range ids {
		out[i] = uint64(id)
	}
	return out, nil
}

func (m *backupMeta) info() BackupInfo {
	return BackupInfo{Zxid: m.Zxid, Voters: m.Voters, Cluster: m.Cluster, NodeID: m.NodeID, Time: time.Unix(0, m.Time)}
}

// decodeBackup reads a backup from r, writes the tree image to img, and
// returns its info once the checksum and the framing are verified. It does
// not decode the image.
func decodeBackup(r io.Reader, img io.Writer) (BackupInfo, error) {
	h := sha256.New()
	br := bufio.NewReaderSize(r, 64<<10)
	var size int64
	read := func(p []byte) error {
		n, err := io.ReadFull(br, p)
		h.Write(p[:n])
		size += int64(n)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: truncated after %d bytes", ErrBadBackup, size)
		}
		return err
	}
	var hdr [12]byte
	if err := read(hdr[:]); err != nil {
		return BackupInfo{}, err
	}
	if string(hdr[:8]) != backupMagic {
		return BackupInfo{}, fmt.Errorf("%w: bad magic", ErrBadBackup)
	}
	if v := binary.BigEndian.Uint32(hdr[8:]); v != backupVersion {
		return BackupInfo{}, fmt.Errorf("%w: version %d, want %d", ErrBadBackup, v, backupVersion)
	}
	var (
		meta    *backupMeta
		payload = make([]byte, 0, 64<<10)
	)
	for {
		// The checksum covers every byte before the 'S' frame: take it
		// before reading a frame's header.
		var fh [5]byte
		sumBefore, hashBefore := size, h.Sum(nil)
		if err := read(fh[:]); err != nil {
			return BackupInfo{}, err
		}
		kind, n := fh[0], binary.BigEndian.Uint32(fh[1:])
		limit := uint32(0)
		switch kind {
		case frameData:
			limit = backupMaxChunk
		case frameMeta:
			limit = backupMaxMeta
		case frameSum:
			limit = sha256.Size
		default:
			return BackupInfo{}, fmt.Errorf("%w: unknown frame %q at byte %d", ErrBadBackup, kind, sumBefore)
		}
		if n > limit || n == 0 {
			return BackupInfo{}, fmt.Errorf("%w: frame %q of %d bytes at byte %d", ErrBadBackup, kind, n, sumBefore)
		}
		if int(n) > cap(payload) {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if err := read(payload); err != nil {
			return BackupInfo{}, err
		}
		switch kind {
		case frameData:
			if meta != nil {
				return BackupInfo{}, fmt.Errorf("%w: data after the info frame", ErrBadBackup)
			}
			if _, err := img.Write(payload); err != nil {
				return BackupInfo{}, err
			}
		case frameMeta:
			if meta != nil {
				return BackupInfo{}, fmt.Errorf("%w: two info frames", ErrBadBackup)
			}
			meta = &backupMeta{}
			if err := msgpackcheck.Check(payload, 8); err != nil {
				return BackupInfo{}, fmt.Errorf("%w: info: %w", ErrBadBackup, err)
			}
			if err := msgpack.Unmarshal(payload, meta); err != nil {
				return BackupInfo{}, fmt.Errorf("%w: info: %w", ErrBadBackup, err)
			}
		case frameSum:
			if meta == nil {
				return BackupInfo{}, fmt.Errorf("%w: checksum before the info frame", ErrBadBackup)
			}
			if !bytes.Equal(hashBefore, payload) {
				return BackupInfo{}, fmt.Errorf("%w: checksum mismatch", ErrBadBackup)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				if err == nil {
					return BackupInfo{}, fmt.Errorf("%w: bytes after the checksum", ErrBadBackup)
				}
				return BackupInfo{}, err
			}
			if meta.Zxid <= 0 || len(meta.Voters) == 0 {
				return BackupInfo{}, fmt.Errorf("%w: info without a zxid or voters", ErrBadBackup)
			}
			info := meta.info()
			info.Size, info.SHA256 = size, hex.EncodeToString(payload)
			return info, nil
		}
	}
}

// ReadBackup reads a whole backup from r and verifies it as Restore does
// (framing, checksum, the image's own checksum, digest and znode rules)
// without writing anything, like etcdctl snapshot status. Bytes that are
// not an intact backup give an error wrapping ErrBadBackup.
func ReadBackup(r io.Reader) (BackupInfo, error) {
	info, _, err := readBackup(r)
	return info, err
}

// readBackup decodes and verifies a backup and returns it with its image.
func readBackup(r io.Reader) (BackupInfo, []byte, error) {
	var img bytes.Buffer
	info, err := decodeBackup(r, &img)
	if err != nil {
		return BackupInfo{}, nil, err
	}
	// Any replica reads any snapshot (the data limit travels with each
	// write, and snapshot frames are bounded by tree.MaxDataLimit).
	t, err := tree.ReadSnapshot(bytes.NewReader(img.Bytes()), tree.Options{WatchHistory: -1})
	if err != nil {
		return BackupInfo{}, nil, fmt.Errorf("%w: image: %w", ErrBadBackup, err)
	}
	if t.LastZxid() != info.Zxid {
		return BackupInfo{}, nil, fmt.Errorf("%w: image at zxid %d, info says %d", ErrBadBackup, t.LastZxid(), info.Zxid)
	}
	info.Znodes = t.NodeCount()
	return info, img.Bytes(), nil
}

// RestoreOptions say where and for which node Restore writes a data
// directory.
type RestoreOptions struct {
	// DataDir is the new node's data directory (its Config.DataDir). It
	// must not exist or hold no data. Required.
	DataDir string
	// NodeID is the new node's id (its Config.NodeID). Required.
	NodeID uint64
	// Cluster is the new cluster's name (its Config.Cluster; empty means
	// the default, "coord", as in Config).
	Cluster string
	// Voters is the new cluster's voter configuration (its Config.Voters).
	// Empty keeps the backup's voters, for a cluster rebuilt with the old
	// ids.
	Voters []uint64
}

// Restore seeds a new cluster from a backup, like etcdctl snapshot
// restore: it reads and verifies the whole backup from r (as ReadBackup
// does) and only then writes opts.DataDir, a data directory from which
// node opts.NodeID starts holding exactly the backup's znodes at its zxid,
// with opts.Voters as the voter configuration. Bytes that are not an
// intact backup give an error wrapping ErrBadBackup and write nothing.
//
// The procedure: restore the same backup once per voter of the new
// cluster, each with its own NodeID and DataDir and the same Cluster and
// Voters; then start each voter with Join and a Config naming that
// NodeID, DataDir, Cluster and Voters. The voters elect a leader of a new
// epoch, and the first new write gets a zxid after the backup's.
// Observers need no restore: they join with an empty DataDir and copy the
// state from the leader. A voter must not start with an empty DataDir
// (nor a restored one from another backup): restore every voter.
//
// A restored cluster is a new cluster. Its data directories carry no
// cluster id, so it chooses its own; give it a Cluster name (or a
// SecretKey) of its own too, so that it can never merge with the cluster
// the backup came from while that one still runs. Sessions in the backup
// belong to the old cluster's clients, which cannot resume them: the new
// leader gives each a full timeout and then expires it, so their ephemeral
// znodes vanish one session timeout after the new cluster starts.
func Restore(r io.Reader, opts RestoreOptions) (BackupInfo, error) {
	if opts.DataDir == "" || opts.NodeID == 0 {
		return BackupInfo{}, fmt.Errorf("%w: Restore needs a DataDir and a NodeID", ErrInvalidConfig)
	}
	if opts.Cluster == "" {
		opts.Cluster = LANConfig(0).Cluster
	}
	info, img, err := readBackup(r)
	if err != nil {
		return BackupInfo{}, err
	}
	voters := opts.Voters
	if len(voters) == 0 {
		voters = info.Voters
	}
	ids := make([]zab.PeerID, len(voters))
	for i, v := range voters {
		if v == 0 {
			return BackupInfo{}, fmt.Errorf("%w: voter id 0", ErrInvalidConfig)
		}
		ids[i] = zab.PeerID(v)
	}
	snap := zab.Snapshot{Zxid: zab.Zxid(info.Zxid), Data: img, Voters: ids}
	if err := zab.SeedDataDir(opts.DataDir, opts.Cluster, zab.PeerID(opts.NodeID), snap); err != nil {
		return BackupInfo{}, fmt.Errorf("coord: restore: %w", err)
	}
	return info, nil
}
