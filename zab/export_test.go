package zab

// HeldEntryBytes returns how much entry data n's in-memory log holds.
func HeldEntryBytes(n *Node) int { return n.mem.HeldBytes() }
