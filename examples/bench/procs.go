package main

// -procs: the nodes of the cluster run as separate processes (this binary
// again, with -child-index), as the peers' servers do. A coord node is a
// library in its caller's process, so each process also runs the clients
// homed on its node (client i on node i mod n) and sends the parent what
// they measured; the parent merges the processes' figures into one result.
//
// The protocol, one line each on the child's stdin and stdout: the child
// prints "ready" once its node has joined and its clients' sessions and
// znodes are set up; the parent, once every child is ready, sends
// "go <unix ns>" (the common start of the warm-up); the child prints its
// clientRun as JSON when its clients are done and waits for "stop" (or the
// end of stdin) before it closes its node, so no node leaves while another
// process still measures.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/coord-dev/coord/coord"
)

// procsWorkloads are the workloads -procs runs.
var procsWorkloads = map[string]bool{"write": true, "read": true, "ephemeral": true}

// runProcs is the parent of a -procs run.
func runProcs(value []byte) error {
	if !procsWorkloads[*flagWorkload] {
		return fmt.Errorf("-procs runs the write, read and ephemeral workloads, not %q", *flagWorkload)
	}
	n := *flagNodes
	dir, err := os.MkdirTemp("", "coord-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var seeds []string
	for range n {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		seeds = append(seeds, addr)
	}
	type child struct {
		cmd *exec.Cmd
		in  io.WriteCloser
		out *bufio.Reader
	}
	children := make([]*child, n)
	defer func() {
		for _, ch := range children {
			if ch != nil {
				ch.in.Close() // end of stdin: the child closes its node and exits
				_ = ch.cmd.Wait()
			}
		}
	}()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for i := range n {
		args := append([]string{}, os.Args[1:]...)
		args = append(args, "-child-index", strconv.Itoa(i), "-child-seeds", strings.Join(seeds, ","), "-child-dir", dir)
		cmd := exec.Command(self, args...)
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("node %d: %w", i+1, err)
		}
		children[i] = &child{cmd: cmd, in: in, out: bufio.NewReader(out)}
	}
	readLine := func(i int) (string, error) {
		l, err := children[i].out.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("node %d process: %w", i+1, err)
		}
		return strings.TrimSpace(l), nil
	}
	for i := range n {
		if l, err := readLine(i); err != nil || l != "ready" {
			return fmt.Errorf("node %d process not ready: %q %v", i+1, l, err)
		}
	}
	start := time.Now().Add(100 * time.Millisecond)
	for _, ch := range children {
		if _, err := fmt.Fprintf(ch.in, "go %d\n", start.UnixNano()); err != nil {
			return err
		}
	}
	merged := &clientRun{}
	for i := range n {
		l, err := readLine(i)
		if err != nil {
			return err
		}
		var run clientRun
		if err := json.Unmarshal([]byte(l), &run); err != nil {
			return fmt.Errorf("node %d process result: %w", i+1, err)
		}
		merged.Lats = append(merged.Lats, run.Lats...)
		merged.Errors += run.Errors
		if merged.FirstErr == "" {
			merged.FirstErr = run.FirstErr
		}
	}
	for _, ch := range children {
		_, _ = io.WriteString(ch.in, "stop\n")
	}
	mode := ""
	if *flagWorkload == "read" && *flagReadMode == "linearizable" {
		mode = "linearizable"
	}
	res := merged.result(*flagWorkload, mode, *flagClients, *flagDuration)
	res.Extra["processes"] = n
	return emit(res)
}

// runChild is one node's process of a -procs run.
func runChild(value []byte) error {
	idx := *flagChildIndex
	seeds := strings.Split(*flagChildSeeds, ",")
	n := len(seeds)
	if idx < 0 || idx >= n {
		return fmt.Errorf("-child-index %d of %d nodes", idx, n)
	}
	var voters []uint64
	for i := range n {
		voters = append(voters, uint64(i+1))
	}
	cfg, err := nodeConfig(idx, seeds, voters, *flagChildDir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	node, err := coord.JoinContext(ctx, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("node %d: %w", idx+1, err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		node.Close(ctx)
	}()
	// The cluster as this process sees it: its own node at its index.
	c := &cluster{nodes: make([]*coord.Node, n)}
	c.nodes[idx] = node
	var clients []int
	for i := idx; i < *flagClients; i += n {
		clients = append(clients, i)
	}
	in := bufio.NewReader(os.Stdin)
	mode := ""
	if *flagWorkload == "read" && *flagReadMode == "linearizable" {
		mode = "linearizable"
	}
	run, err := runClients(c, *flagWorkload, mode, clients, *flagWarmup, *flagDuration, value, func() (time.Time, error) {
		fmt.Println("ready")
		l, err := in.ReadString('\n')
		if err != nil {
			return time.Time{}, fmt.Errorf("waiting for go: %w", err)
		}
		ns, ok := strings.CutPrefix(strings.TrimSpace(l), "go ")
		if !ok {
			return time.Time{}, fmt.Errorf("want go, got %q", l)
		}
		at, err := strconv.ParseInt(ns, 10, 64)
		return time.Unix(0, at), err
	})
	if err != nil {
		return err
	}
	b, err := json.Marshal(run)
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	// Stay in the cluster until the parent says stop (or is gone).
	if _, err := in.ReadString('\n'); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
