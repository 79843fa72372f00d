package wal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// IdentityFile is the name of the file that says whose data directory this
// is (WriteIdentity).
const IdentityFile = "identity"

// MaxClusterName bounds Identity.Cluster.
const MaxClusterName = 255

// Identity says which cluster and which node a data directory belongs to.
// It is written before anything else in the directory, so a directory that
// holds a log, snapshots or epochs but no identity is incomplete.
type Identity struct {
	// Cluster is the cluster's name (its configuration).
	Cluster string
	// ClusterID is the random id the cluster chose when it was first
	// established, shared by all its members; zero until the node learns it.
	ClusterID uint64
	// NodeID is the id of the node the directory belongs to.
	NodeID uint64
	// Member is set once the node's state is part of the cluster's history,
	// Fixed once ClusterID can no longer change (the protocol decides when:
	// see zab.HardState).
	Member, Fixed bool
}

// Identity file layout (little endian):
//
//	[0:4)      magic "CIDN"
//	[4:8)      version uint32 (identityVersion)
//	[8:16)     node id uint64
//	[16:24)    cluster id uint64
//	[24:28)    flags uint32: bit 0 Member, bit 1 Fixed, the others zero
//	[28:30)    n, the length of the cluster name, uint16 (at most MaxClusterName)
//	[30:30+n)  cluster name
//	[30+n:34+n) crc uint32 CRC32C over [0:30+n)
const (
	identityMagic   = "CIDN"
	identityVersion = 1
	identityFixed   = 30
	flagMember      = 1
	flagFixed       = 2
)

// encodeIdentity returns the bytes of id's identity file.
func encodeIdentity(id Identity) ([]byte, error) {
	if len(id.Cluster) > MaxClusterName {
		return nil, fmt.Errorf("wal: cluster name of %d bytes, at most %d", len(id.Cluster), MaxClusterName)
	}
	b := make([]byte, 0, identityFixed+len(id.Cluster)+4)
	b = append(b, identityMagic...)
	b = binary.LittleEndian.AppendUint32(b, identityVersion)
	b = binary.LittleEndian.AppendUint64(b, id.NodeID)
	b = binary.LittleEndian.AppendUint64(b, id.ClusterID)
	var flags uint32
	if id.Member {
		flags |= flagMember
	}
	if id.Fixed {
		flags |= flagFixed
	}
	b = binary.LittleEndian.AppendUint32(b, flags)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(id.Cluster)))
	b = append(b, id.Cluster...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// decodeIdentity parses an identity file's bytes; path names the file in
// errors, which are *CorruptError.
func decodeIdentity(path string, b []byte) (Identity, error) {
	if len(b) < identityFixed+4 {
		return Identity{}, corruptf(path, 0, "identity file has %d bytes, want at least %d", len(b), identityFixed+4)
	}
	if string(b[0:4]) != identityMagic {
		return Identity{}, corruptf(path, 0, "bad identity file magic")
	}
	if v := binary.LittleEndian.Uint32(b[4:8]); v != identityVersion {
		return Identity{}, versionf(path, 4, "identity file", v, identityVersion)
	}
	flags := binary.LittleEndian.Uint32(b[24:28])
	if flags&^(flagMember|flagFixed) != 0 {
		return Identity{}, corruptf(path, 24, "unknown identity flags %#x", flags)
	}
	n := int(binary.LittleEndian.Uint16(b[28:30]))
	if n > MaxClusterName {
		return Identity{}, corruptf(path, 28, "cluster name of %d bytes, at most %d", n, MaxClusterName)
	}
	if len(b) != identityFixed+n+4 {
		return Identity{}, corruptf(path, 0, "identity file has %d bytes, want %d", len(b), identityFixed+n+4)
	}
	end := identityFixed + n
	if crc32.Checksum(b[:end], castagnoli) != binary.LittleEndian.Uint32(b[end:]) {
		return Identity{}, corruptf(path, int64(end), "identity file checksum mismatch")
	}
	return Identity{
		NodeID:    binary.LittleEndian.Uint64(b[8:16]),
		ClusterID: binary.LittleEndian.Uint64(b[16:24]),
		Member:    flags&flagMember != 0,
		Fixed:     flags&flagFixed != 0,
		Cluster:   string(b[identityFixed:end]),
	}, nil
}

// WriteIdentity durably stores id in dir/IdentityFile, atomically (as
// WriteEpoch does).
func WriteIdentity(dir string, id Identity) error {
	b, err := encodeIdentity(id)
	if err != nil {
		return err
	}
	if err := ensureDir(dir); err != nil {
		return err
	}
	if err := writeFileAtomic(dir, IdentityFile, b); err != nil {
		return fmt.Errorf("wal: writing %s: %w", IdentityFile, err)
	}
	return nil
}

// ReadIdentity reads the identity WriteIdentity wrote in dir. A missing file
// returns an error matching fs.ErrNotExist; a damaged one a *CorruptError.
func ReadIdentity(dir string) (Identity, error) {
	path := filepath.Join(dir, IdentityFile)
	f, err := os.Open(path)
	if err != nil {
		return Identity{}, err
	}
	defer f.Close()
	const max = identityFixed + MaxClusterName + 4
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return Identity{}, err
	}
	return decodeIdentity(path, b)
}
