package recipes_test

import (
	"context"

	"github.com/coord-dev/coord/coord"
)

// exampleNode starts a one-voter cluster on loopback for an Example; stop
// closes it.
func exampleNode() (node *coord.Node, stop func()) {
	cfg := coord.LocalConfig(1)
	cfg.Voters = []uint64{1}
	node, err := coord.Join(cfg)
	if err != nil {
		panic(err)
	}
	return node, func() { node.Close(context.Background()) }
}
