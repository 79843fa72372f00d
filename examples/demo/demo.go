// Package demo is what the multi-process examples (lock, election, config,
// registry) share: the flags that place a node in a cluster, how they become
// a coord.Config, and a "node N:" prefix on every line printed. Read Join to
// see how a node of a real service would be configured.
package demo

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/coord-dev/coord/coord"
)

// Node is one node's place in the cluster, from its flags.
type Node struct {
	id    *uint64
	seeds *string
	data  *string
}

// Flags registers -id, -seeds and -data on the default flag set; call it
// before flag.Parse.
func Flags() *Node {
	return &Node{
		id:    flag.Uint64("id", 1, "this node's id: its place in -seeds, from 1"),
		seeds: flag.String("seeds", "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003", "every node's gossip address, in id order"),
		data:  flag.String("data", "", "directory for the log and snapshots (empty: in memory)"),
	}
}

// ID is this node's id.
func (n *Node) ID() uint64 { return *n.id }

// Printf prints one line prefixed with "node N: ".
func (n *Node) Printf(format string, args ...any) {
	fmt.Printf("node %d: %s\n", *n.id, fmt.Sprintf(format, args...))
}

// Run parses the command line, joins the cluster and calls fn with the
// node and a context that Ctrl-C cancels; then it closes the node (its
// sessions end, their ephemerals and locks go with them) and exits with
// status 1 if fn or the join failed. Register extra flags before Run.
func (n *Node) Run(fn func(ctx context.Context, node *coord.Node) error) {
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	node, err := n.Join(ctx)
	if err == nil {
		err = fn(ctx, node)
		node.Close(context.Background())
	}
	stop()
	if err != nil && ctx.Err() == nil {
		n.Printf("%v", err)
		os.Exit(1)
	}
	n.Printf("stopped")
}

// Join joins the cluster: every node in -seeds is a voter, and this node
// listens for gossip on its own entry. It waits for a quorum until ctx ends
// (rather than LocalConfig's 10s JoinTimeout), so the nodes can be started
// one by one in separate terminals.
func (n *Node) Join(ctx context.Context) (*coord.Node, error) {
	cfg := coord.LocalConfig(*n.id) // coord.LANConfig on a real network: slower timers
	cfg.Seeds = strings.Split(*n.seeds, ",")
	if *n.id < 1 || *n.id > uint64(len(cfg.Seeds)) {
		return nil, fmt.Errorf("-id %d: want 1 to %d, one per -seeds address", *n.id, len(cfg.Seeds))
	}
	cfg.GossipBindAddr = cfg.Seeds[*n.id-1]
	host, _, err := net.SplitHostPort(cfg.GossipBindAddr)
	if err != nil {
		return nil, fmt.Errorf("-seeds: %w", err)
	}
	// Replication on any free port of the same address; gossip tells the others.
	cfg.ReplicationBindAddr = net.JoinHostPort(host, "0")
	for i := range cfg.Seeds {
		cfg.Voters = append(cfg.Voters, uint64(i+1))
	}
	cfg.DataDir = *n.data
	n.Printf("joining; Join waits for a quorum of %d voters", len(cfg.Voters)/2+1)
	node, err := coord.JoinContext(ctx, cfg)
	if err != nil {
		return nil, err
	}
	leader, epoch := node.Leader()
	n.Printf("joined; node %d leads epoch %d", leader, epoch)
	return node, nil
}

// Sleep waits for d, or until ctx ends or stop closes (a nil stop never does).
func Sleep(ctx context.Context, stop <-chan struct{}, d time.Duration) {
	select {
	case <-time.After(d):
	case <-stop:
	case <-ctx.Done():
	}
}
