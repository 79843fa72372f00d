package prom_test

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/coord/admin/prom"
)

func ExampleNewCollector() {
	cfg := coord.LocalConfig(1)
	cfg.Voters = []uint64{1}
	node, err := coord.Join(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer node.Close(context.Background())

	// Your service's registry (or prometheus.MustRegister for the default).
	reg := prometheus.NewRegistry()
	reg.MustRegister(prom.NewCollector(node))
	fams, err := reg.Gather()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range fams {
		switch f.GetName() {
		case "coord_up", "coord_leader", "coord_voters":
			m := f.GetMetric()[0]
			fmt.Println(f.GetName(), m.GetLabel()[0].GetName(), m.GetLabel()[0].GetValue(), m.GetGauge().GetValue())
		}
	}
	// Output:
	// coord_leader node 1 1
	// coord_up node 1 1
	// coord_voters node 1 1
}
