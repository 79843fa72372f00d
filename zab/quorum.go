package zab

import "slices"

// MajorityConfig is a set of voters; a quorum is any strict majority of it.
// It is a plain value so that a replicated reconfiguration can later swap the
// set a Peer uses.
type MajorityConfig struct {
	ids []PeerID // sorted, unique
}

// NewMajorityConfig returns the majority configuration of ids (duplicates are
// ignored).
func NewMajorityConfig(ids ...PeerID) MajorityConfig {
	s := slices.Clone(ids)
	slices.Sort(s)
	return MajorityConfig{ids: slices.Compact(s)}
}

// IDs returns the voters in increasing order. The slice must not be modified.
func (c MajorityConfig) IDs() []PeerID { return c.ids }

// Len returns the number of voters.
func (c MajorityConfig) Len() int { return len(c.ids) }

// Contains reports whether id is a voter.
func (c MajorityConfig) Contains(id PeerID) bool {
	_, ok := slices.BinarySearch(c.ids, id)
	return ok
}

// Quorum returns the number of voters that make a majority.
func (c MajorityConfig) Quorum() int { return len(c.ids)/2 + 1 }

// HasQuorum reports whether the voters for which yes returns true form a
// majority. Non-voters are never asked, so they can never tip the balance.
func (c MajorityConfig) HasQuorum(yes func(PeerID) bool) bool {
	n := 0
	for _, id := range c.ids {
		if yes(id) {
			n++
		}
	}
	return len(c.ids) > 0 && n >= c.Quorum()
}

// CommittedZxid returns the largest zxid that a majority of voters has
// acknowledged, given each voter's highest acknowledged zxid (zero if none).
// It is the Quorum()-th largest acknowledgement.
func (c MajorityConfig) CommittedZxid(acked func(PeerID) Zxid) Zxid {
	if len(c.ids) == 0 {
		return 0
	}
	var stack [7]Zxid // avoid allocating for small ensembles
	zs := stack[:0]
	for _, id := range c.ids {
		zs = append(zs, acked(id))
	}
	slices.Sort(zs)
	// ascending: the Quorum()-th largest sits at len-Quorum.
	return zs[len(zs)-c.Quorum()]
}
