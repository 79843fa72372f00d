package zab

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/coord-dev/coord/zab/wal"
)

// VotersAt returns the voter configuration in force at zxid z on this node:
// the newest configuration entry at or before z in the log, else the
// snapshot's. It fails with ErrCompacted once the log no longer reaches
// back to z. Safe to call from any goroutine.
func (n *Node) VotersAt(z Zxid) ([]PeerID, error) { return n.mem.VotersAt(z) }

// SeedDataDir writes a new data directory, dir, for node id of cluster
// from which the node starts with the state of snap: a state machine image
// at snap.Zxid and the voters in force there (snap.Voters, which must not
// be empty). It writes the identity first (without a cluster id: the
// cluster that forms on seeded directories is a new one and chooses its
// own), then the snapshot, then both epochs at snap.Zxid's epoch, so that
// the election on seeded nodes opens a new epoch after every zxid of the
// image. dir must not exist or hold no data (ErrDataDir otherwise). If
// SeedDataDir fails, remove dir before trying again.
func SeedDataDir(dir, cluster string, id PeerID, snap Snapshot) error {
	if id == 0 {
		return fmt.Errorf("%w: node id 0", ErrInvalidConfig)
	}
	if len(snap.Voters) == 0 {
		return fmt.Errorf("%w: a seeded snapshot needs its voters", ErrInvalidConfig)
	}
	switch _, err := wal.ReadIdentity(dir); {
	case err == nil:
		return fmt.Errorf("%w: %s already belongs to a node (%s exists)", ErrDataDir, dir, wal.IdentityFile)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %w", ErrDataDir, err)
	}
	files, err := dataFiles(dir)
	if err != nil {
		return err
	}
	if len(files) > 0 {
		return fmt.Errorf("%w: %s already holds %s", ErrDataDir, dir, strings.Join(files, ", "))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := wal.WriteIdentity(dir, wal.Identity{Cluster: cluster, NodeID: uint64(id)}); err != nil {
		return err
	}
	snaps, err := wal.OpenSnapshotStore(dir, nil)
	if err != nil {
		return err
	}
	if _, err := snaps.Write(uint64(snap.Zxid), snapshotWriter(snap.Voters, snap.Data)); err != nil {
		return fmt.Errorf("zab: seeding %s: %w", dir, err)
	}
	e := snap.Zxid.Epoch()
	for _, name := range []string{wal.AcceptedEpochFile, wal.CurrentEpochFile} {
		if err := wal.WriteEpoch(dir, name, e); err != nil {
			return fmt.Errorf("zab: seeding %s: %w", dir, err)
		}
	}
	return nil
}
