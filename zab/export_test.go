package zab

// HeldEntryBytes returns how much entry data n's in-memory log holds.
func HeldEntryBytes(n *Node) int {
	n.mem.mu.Lock()
	defer n.mem.mu.Unlock()
	return n.mem.held
}
