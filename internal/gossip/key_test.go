package gossip

import (
	"bytes"
	"testing"
)

// TestMemberlistKeyIsDerived: memberlist never gets the SecretKey itself
// but a 32-byte key derived from it, the same on every node for one secret
// and different for another (so gossip does not share the replication
// transport's keys, which zab/tcp derives with other labels).
func TestMemberlistKeyIsDerived(t *testing.T) {
	a, b := []byte("0123456789abcdef"), []byte("fedcba9876543210")
	ka := memberlistKey(a)
	if len(ka) != 32 {
		t.Fatalf("derived key of %d bytes, want 32 (AES-256)", len(ka))
	}
	if bytes.Contains(ka, a) {
		t.Fatal("the derived key contains the secret")
	}
	if !bytes.Equal(ka, memberlistKey(bytes.Clone(a))) {
		t.Fatal("derivation is not deterministic: nodes would not agree")
	}
	if bytes.Equal(ka, memberlistKey(b)) {
		t.Fatal("two secrets derive one key")
	}
}
