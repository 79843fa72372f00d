package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// summarize prints coord, ZooKeeper and etcd side by side from one JSON-lines
// file holding this command's results and the peers' load generator's
// (medians over runs, as the peers' -summarize).
func summarize(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var rs []Result
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] != '{' {
			continue
		}
		var r Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return fmt.Errorf("%q: %w", line, err)
		}
		rs = append(rs, r)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	type key struct {
		sys, label, workload, mode string
		clients                    int
	}
	type agg struct{ ops, p50, p99 []float64 }
	m := map[key]*agg{}
	for _, r := range rs {
		switch r.Workload {
		case "write", "read", "ephemeral", "lock":
		default:
			continue
		}
		mode := r.Mode
		if r.Workload == "read" && (mode == "" || mode == "serializable") {
			mode = "local" // ZK getData, etcd serializable Get, coord Get
		}
		k := key{r.Sys, r.Label, r.Workload, mode, r.Clients}
		a := m[k]
		if a == nil {
			a = &agg{}
			m[k] = a
		}
		a.ops = append(a.ops, r.OpsPerSec)
		a.p50 = append(a.p50, r.P50Ms)
		a.p99 = append(a.p99, r.P99Ms)
	}
	rows := []struct {
		title, workload, mode string
		clients               int
	}{
		{"write (coord Set / ZK setData / etcd Put)", "write", "", 1},
		{"write", "write", "", 16},
		{"write", "write", "", 128},
		{"read, local (coord Get / ZK getData / etcd serializable Get)", "read", "local", 16},
		{"read, local", "read", "local", 128},
		{"read, linearizable (coord Sync+Get / etcd Get)", "read", "linearizable", 16},
		{"read, linearizable", "read", "linearizable", 128},
		{"ephemeral create+delete (etcd: lease put+delete)", "ephemeral", "", 16},
		{"lock handoff, acquisitions/s (latency = wait in Lock)", "lock", "", 16},
	}
	for _, label := range []string{"3node", "1node"} {
		cols := []struct{ sys, title string }{{"coord", "coord"}, {"zk", "ZooKeeper"}, {"etcd", "etcd"}}
		any := false
		for k := range m {
			if k.label == label {
				any = true
			}
		}
		if !any {
			continue
		}
		fmt.Printf("%s: ops/s (p50 / p99 ms), median over runs; coord/ZK and coord/etcd are ops/s ratios\n\n", label)
		fmt.Print("| workload | N |")
		for _, c := range cols {
			fmt.Printf(" %s |", c.title)
		}
		fmt.Println(" coord/ZK | coord/etcd |")
		fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
		for _, r := range rows {
			fmt.Printf("| %s | %d |", r.title, r.clients)
			var vals []float64
			for _, c := range cols {
				a, ok := m[key{c.sys, label, r.workload, r.mode, r.clients}]
				if !ok {
					fmt.Print(" – |")
					vals = append(vals, 0)
					continue
				}
				o := median(a.ops)
				vals = append(vals, o)
				fmt.Printf(" %s (%s / %s) |", fmtNum(o), fmtNum(median(a.p50)), fmtNum(median(a.p99)))
			}
			for _, v := range vals[1:] {
				if v == 0 || vals[0] == 0 {
					fmt.Print(" – |")
				} else {
					fmt.Printf(" %s× |", fmtNum(vals[0]/v))
				}
			}
			fmt.Println()
		}
		fmt.Println()
	}

	// failover: medians over trials
	type fo struct{ leader, first, all, gap []float64 }
	fos := map[string]*fo{}
	var sysOrder []string
	for _, r := range rs {
		if r.Workload != "failover" {
			continue
		}
		a := fos[r.Sys]
		if a == nil {
			a = &fo{}
			fos[r.Sys] = a
			sysOrder = append(sysOrder, r.Sys)
		}
		if v, ok := r.Extra["new_leader_in_log_ms"].(float64); ok {
			a.leader = append(a.leader, v)
		}
		v, _ := r.Extra["first_write_ok_ms"].(float64)
		a.first = append(a.first, v)
		v, _ = r.Extra["all_clients_write_ok_ms"].(float64)
		a.all = append(a.all, v)
		v, _ = r.Extra["max_gap_ms"].(float64)
		a.gap = append(a.gap, v)
	}
	if len(sysOrder) > 0 {
		fmt.Println("| failover (3 nodes), median over trials | trials | new leader (ms after stop) | first write OK (ms) | all clients writing (ms) | longest write gap (ms) |")
		fmt.Println("|---|---:|---:|---:|---:|---:|")
		for _, s := range sysOrder {
			a := fos[s]
			fmt.Printf("| %s | %d | %s (%s) | %s (%s) | %s (%s) | %s (%s) |\n", s, len(a.first),
				fmtNum(median(a.leader)), runsStr(a.leader), fmtNum(median(a.first)), runsStr(a.first),
				fmtNum(median(a.all)), runsStr(a.all), fmtNum(median(a.gap)), runsStr(a.gap))
		}
		fmt.Println()
	}

	// memory: per server (coord: one process holds every node)
	type mk struct{ sys, label, phase, server string }
	var morder []mk
	mm := map[mk][][3]float64{}
	for _, r := range rs {
		if r.Workload != "rss" {
			continue
		}
		k := mk{r.Sys, r.Label, fmt.Sprint(r.Extra["phase"]), fmt.Sprint(r.Extra["server"])}
		if _, ok := mm[k]; !ok {
			morder = append(morder, k)
		}
		rss, _ := r.Extra["rss_kb"].(float64)
		heap, _ := r.Extra["jvm_heap_used_kb"].(float64)
		if g, ok := r.Extra["go_heap_alloc_kb"].(float64); ok {
			heap = g
		}
		anon, _ := r.Extra["rss_anon_kb"].(float64)
		mm[k] = append(mm[k], [3]float64{rss / 1024, anon / 1024, heap / 1024})
	}
	if len(morder) > 0 {
		sort.SliceStable(morder, func(i, j int) bool { return morder[i].sys < morder[j].sys })
		fmt.Println("| system | cluster | phase | server | RSS MiB | anon MiB | heap in use MiB (JVM used / Go HeapAlloc) |")
		fmt.Println("|---|---|---|---|---:|---:|---:|")
		for _, k := range morder {
			var rss, anon, heap []float64
			for _, v := range mm[k] {
				rss, anon, heap = append(rss, v[0]), append(anon, v[1]), append(heap, v[2])
			}
			h := fmtNum(median(heap))
			if k.sys == "etcd" {
				h = "n/a"
			}
			fmt.Printf("| %s | %s | %s | %s | %s | %s | %s |\n", k.sys, k.label, k.phase, k.server,
				fmtNum(median(rss)), fmtNum(median(anon)), h)
		}
	}
	return nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

func fmtNum(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.2f", x)
	}
}

func runsStr(xs []float64) string {
	p := make([]string, len(xs))
	for i, x := range xs {
		p[i] = fmtNum(x)
	}
	return strings.Join(p, ", ")
}
