package gossip

import (
	"crypto/hkdf"
	"crypto/sha256"
)

// gossipKeyLabel is the HKDF info label of the gossip key. zab/tcp derives
// the replication keys from the same SecretKey with labels of its own.
const gossipKeyLabel = "coord gossip v2 memberlist"

// memberlistKey derives memberlist's keyring key (AES-256) from the
// cluster's SecretKey with HKDF-SHA256 (no salt: the key must be the same
// on every node).
func memberlistKey(secret []byte) []byte {
	k, err := hkdf.Key(sha256.New, secret, nil, gossipKeyLabel, 32)
	if err != nil {
		// Only a length beyond 255 hash sizes fails.
		panic(err)
	}
	return k
}
