package tree

import "encoding/binary"

// The digest is the wrapping sum of a hash of every node (path, stat, kind,
// data) and every session, so one change updates it in O(size of the change),
// like ZooKeeper's DigestCalculator. The hash is FNV-1a finished with a
// splitmix64 mix so that summing spreads well; it is fixed for all time
// because snapshots carry digests.

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func fnvBytes(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

func fnvUint64(h, v uint64) uint64 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	return fnvBytes(h, b[:])
}

func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func nodeHash(path string, n *node) uint64 {
	return nodeHashFrom(fnvString(fnvOffset, path), n)
}

// nodeHashFrom finishes a node's hash from the FNV state of its path.
func nodeHashFrom(h uint64, n *node) uint64 {
	h = fnvUint64(h, uint64(n.czxid))
	h = fnvUint64(h, uint64(n.mzxid))
	h = fnvUint64(h, uint64(n.pzxid))
	h = fnvUint64(h, uint64(n.ctime))
	h = fnvUint64(h, uint64(n.mtime))
	h = fnvUint64(h, uint64(n.owner))
	h = fnvUint64(h, uint64(uint32(n.version))|uint64(uint32(n.cversion))<<32)
	h = fnvUint64(h, uint64(len(n.children())))
	h = fnvString(h, n.data)
	return mix64(h)
}

func sessionHash(id int64, timeout int32) uint64 {
	h := fnvString(fnvOffset, "session")
	h = fnvUint64(h, uint64(id))
	h = fnvUint64(h, uint64(uint32(timeout)))
	return mix64(h)
}
