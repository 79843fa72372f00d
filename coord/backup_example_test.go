package coord_test

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"github.com/coord-dev/coord/coord"
)

// A backup of a running cluster seeds a new one: restore it into each new
// voter's data directory, then start the voters on those directories.
func ExampleRestore() {
	node, stop := startOne()
	defer stop()
	ctx := context.Background()
	if _, err := node.Create(ctx, "/config", []byte("color=green"), coord.Persistent); err != nil {
		fmt.Println(err)
		return
	}
	var backup bytes.Buffer // a file, in practice
	info, err := node.Backup(ctx, &backup)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("backup voters", info.Voters)

	// The new cluster: another name, one voter with id 5.
	dir, err := os.MkdirTemp("", "coord-restore-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	cfg := coord.LocalConfig(5)
	cfg.Cluster, cfg.Voters, cfg.DataDir = "restored", []uint64{5}, dir
	if _, err := coord.Restore(&backup, coord.RestoreOptions{
		DataDir: cfg.DataDir, NodeID: cfg.NodeID, Cluster: cfg.Cluster, Voters: cfg.Voters}); err != nil {
		fmt.Println(err)
		return
	}
	restored, err := coord.Join(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer restored.Close(ctx)
	data, _, err := restored.Get(ctx, "/config")
	fmt.Println(string(data), err)
	// Output:
	// backup voters [1]
	// color=green <nil>
}
