// Command coordctl inspects and changes a running coord cluster, as zkCli
// and etcdctl do for theirs. It joins the cluster as an observer (a full
// read copy that never votes), runs one command and leaves. Joining copies
// the whole tree from the leader, so on a large tree each run costs one
// snapshot transfer; reads then come from that copy after a Sync, so they
// are linearizable. Each run also leaves a "left" entry in the members'
// gossip until gossip forgets it.
//
//	coordctl [flags] <command> [command flags] [args]
//
// Flags, each with an environment variable that sets its default:
//
//	-seeds    COORD_SEEDS             gossip addresses of some members, comma separated (required)
//	-voters   COORD_VOTERS            the cluster's Voters, comma separated ids (or -bootstrap-expect)
//	-bootstrap-expect COORD_BOOTSTRAP_EXPECT  the cluster's BootstrapExpect
//	-cluster  COORD_CLUSTER           the cluster's name (default coord)
//	-key      COORD_KEY               the cluster's SecretKey: 16, 24 or 32 bytes as is, or hex:... or base64:...
//	-id       COORD_ID                this observer's node id (default: random)
//	-bind     COORD_BIND              gossip bind address (default: 127.0.0.1:0 for loopback seeds, else 0.0.0.0:0)
//	-timeout  COORD_TIMEOUT           bound on joining plus the command (default 30s; watch runs until it ends)
//	-lan      COORD_LAN=1             LANConfig timers (default: LocalConfig's, for one machine)
//
// Commands:
//
//	ls <path>                          children of a znode, one per line
//	tree [path]                        the subtree, indented
//	get <path>                         a znode's data, as is
//	stat <path>                        a znode's Stat, one field per line
//	set [-version N] <path> <data>     replace data (-version -1: any); prints the new version
//	create [-mode M] [-ttl D] <path> [data]   M: persistent (default), sequential, container, ttl, ttl-sequential; prints the path
//	delete [-version N] [-r] <path>    delete a znode (-r: and everything below it)
//	watch [-r] [-n N] <path>           print changes (persistent watch) until N events, the timeout or Ctrl-C
//	members                            members as gossip sees them
//	leader                             the leader and its epoch
//	stats [-json]                      this observer's coord.Stats
//	voters                             the voter configuration in force, with each voter's state
//	add-voter <id>                     make a synced observer a voter
//	remove-voter <id>                  make a voter an observer
//	backup <file|->                    write a backup (coord.Node.Backup) to a new file (or stdout); prints its zxid, voters, size, SHA-256
//	restore -data-dir D -id N [-cluster C] [-voters V] <file|->
//	                                   seed a data directory for a new cluster's node from a backup
//	                                   (coord.Restore; offline: joins nothing)
//
// Exit codes: 0 success; 1 any other error (joining failed, no quorum, a
// refused change, a bad backup); 2 usage; 3 no such znode; 4 the znode
// exists; 5 version mismatch; 6 the znode has children.
package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/coord-dev/coord/coord"
)

// Exit codes.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitNoNode   = 3
	exitExists   = 4
	exitVersion  = 5
	exitNotEmpty = 6
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is a command line mistake (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// exitCode maps an error to the documented exit codes.
func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue), errors.Is(err, flag.ErrHelp):
		return exitUsage
	case errors.Is(err, coord.ErrNoNode):
		return exitNoNode
	case errors.Is(err, coord.ErrNodeExists):
		return exitExists
	case errors.Is(err, coord.ErrBadVersion):
		return exitVersion
	case errors.Is(err, coord.ErrNotEmpty):
		return exitNotEmpty
	}
	return exitError
}

// options are the global flags.
type options struct {
	seeds, voters, cluster, key, bind string
	expect                            int
	id                                uint64
	timeout                           time.Duration
	lan                               bool
}

const usageText = `usage: coordctl [flags] <command> [command flags] [args]

commands: ls, tree, get, stat, set, create, delete, watch, members, leader,
stats, voters, add-voter, remove-voter, backup, restore

exit codes: 0 ok, 1 error, 2 usage, 3 no node, 4 node exists,
5 version mismatch, 6 node has children

flags (defaults from the environment variable named in brackets):
`

// run is main without the process: it parses args, runs one command and
// returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := runErr(ctx, args, getenv, stdin, stdout, stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stderr, "coordctl: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(stderr, "run coordctl -h for help")
		}
	}
	return exitCode(err)
}

func runErr(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("coordctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&o.seeds, "seeds", env("COORD_SEEDS", ""), "gossip addresses of some members, comma separated [COORD_SEEDS]")
	fs.StringVar(&o.voters, "voters", env("COORD_VOTERS", ""), "the cluster's Voters, comma separated ids [COORD_VOTERS]")
	fs.StringVar(&o.cluster, "cluster", env("COORD_CLUSTER", "coord"), "the cluster's name [COORD_CLUSTER]")
	fs.StringVar(&o.key, "key", env("COORD_KEY", ""), "the cluster's SecretKey, as is or hex:... or base64:... [COORD_KEY]")
	fs.StringVar(&o.bind, "bind", env("COORD_BIND", ""), "gossip bind address (default 127.0.0.1:0 for loopback seeds, else 0.0.0.0:0) [COORD_BIND]")
	expect, err := strconv.Atoi(env("COORD_BOOTSTRAP_EXPECT", "0"))
	if err != nil {
		return usagef("COORD_BOOTSTRAP_EXPECT: %v", err)
	}
	fs.IntVar(&o.expect, "bootstrap-expect", expect, "the cluster's BootstrapExpect, instead of -voters [COORD_BOOTSTRAP_EXPECT]")
	id, err := strconv.ParseUint(env("COORD_ID", "0"), 10, 64)
	if err != nil {
		return usagef("COORD_ID: %v", err)
	}
	fs.Uint64Var(&o.id, "id", id, "this observer's node id (0: random) [COORD_ID]")
	timeout, err := time.ParseDuration(env("COORD_TIMEOUT", "30s"))
	if err != nil {
		return usagef("COORD_TIMEOUT: %v", err)
	}
	fs.DurationVar(&o.timeout, "timeout", timeout, "bound on joining plus the command [COORD_TIMEOUT]")
	fs.BoolVar(&o.lan, "lan", getenv("COORD_LAN") == "1", "LANConfig timers instead of LocalConfig's [COORD_LAN=1]")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return usagef("no command")
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	c, ok := commands[name]
	if !ok {
		return usagef("unknown command %q", name)
	}
	cfs := flag.NewFlagSet("coordctl "+name, flag.ContinueOnError)
	cfs.SetOutput(stderr)
	cfs.Usage = func() {
		fmt.Fprintf(stderr, "usage: coordctl [flags] %s %s\n", name, c.usage)
		cfs.PrintDefaults()
	}
	cmd := &command{name: name, fs: cfs, stdin: stdin, stdout: stdout, stderr: stderr}
	body := c.setup(cmd)
	if err := cfs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	cmd.args = cfs.Args()
	if len(cmd.args) < c.minArgs || len(cmd.args) > c.maxArgs {
		return usagef("%s: want %s", name, c.usage)
	}
	if c.offline {
		return body(ctx)
	}
	bounded, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	n, err := join(bounded, o)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = n.Close(cctx)
		cancel()
	}()
	cmd.node = n
	if name == "watch" {
		return body(ctx) // until -n events or Ctrl-C
	}
	return body(bounded)
}

// join joins the cluster as an observer.
func join(ctx context.Context, o options) (*coord.Node, error) {
	if o.seeds == "" {
		return nil, usagef("-seeds (or COORD_SEEDS) is required")
	}
	id := o.id
	if id == 0 {
		// Far above the ids people give their replicas.
		id = 1<<62 + rand.Uint64N(1<<61)
	}
	cfg := coord.LocalConfig(id)
	if o.lan {
		cfg = coord.LANConfig(id)
	}
	cfg.Role = coord.RoleObserver
	cfg.Cluster = o.cluster
	cfg.Seeds = strings.Split(o.seeds, ",")
	if o.key != "" {
		key, err := parseKey(o.key)
		if err != nil {
			return nil, usagef("-key: %v", err)
		}
		cfg.SecretKey = key
	}
	switch {
	case o.voters != "" && o.expect != 0:
		return nil, usagef("set -voters or -bootstrap-expect, not both")
	case o.voters != "":
		vs, err := parseIDs(o.voters)
		if err != nil {
			return nil, usagef("-voters: %v", err)
		}
		cfg.Voters = vs
	case o.expect > 0:
		cfg.BootstrapExpect = o.expect
	default:
		return nil, usagef("-voters or -bootstrap-expect (or COORD_VOTERS, COORD_BOOTSTRAP_EXPECT) is required: the cluster's own setting")
	}
	cfg.GossipBindAddr = o.bind
	if cfg.GossipBindAddr == "" {
		cfg.GossipBindAddr = "0.0.0.0:0"
		if host, _, err := net.SplitHostPort(cfg.Seeds[0]); err == nil {
			if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
				cfg.GossipBindAddr = "127.0.0.1:0"
			}
		}
	}
	if host, _, err := net.SplitHostPort(cfg.GossipBindAddr); err == nil {
		cfg.ReplicationBindAddr = net.JoinHostPort(host, "0")
	}
	if err := cfg.Validate(); err != nil {
		return nil, usagef("%v", err)
	}
	n, err := coord.JoinContext(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("joining %s as observer %d: %w", o.seeds, id, err)
	}
	return n, nil
}

// parseKey reads a SecretKey: "hex:..." and "base64:..." are decoded,
// anything else is taken as is.
func parseKey(s string) ([]byte, error) {
	switch {
	case strings.HasPrefix(s, "hex:"):
		return hex.DecodeString(s[len("hex:"):])
	case strings.HasPrefix(s, "base64:"):
		return base64.StdEncoding.DecodeString(s[len("base64:"):])
	}
	return []byte(s), nil
}

func parseIDs(s string) ([]uint64, error) {
	var out []uint64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil || v == 0 {
			return nil, fmt.Errorf("%q is not a node id", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// command is one invocation's context.
type command struct {
	name   string
	fs     *flag.FlagSet
	args   []string
	node   *coord.Node
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// table starts tab-separated output aligned in columns.
func (c *command) table() *tabwriter.Writer {
	return tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
}

// spec describes a command: its argument count and how it sets up its
// flags and returns its body.
type spec struct {
	usage            string
	minArgs, maxArgs int
	offline          bool
	setup            func(c *command) func(ctx context.Context) error
}

var commands = map[string]spec{
	"ls":           {"<path>", 1, 1, false, cmdLs},
	"tree":         {"[path]", 0, 1, false, cmdTree},
	"get":          {"<path>", 1, 1, false, cmdGet},
	"stat":         {"<path>", 1, 1, false, cmdStat},
	"set":          {"[-version N] <path> <data>", 2, 2, false, cmdSet},
	"create":       {"[-mode M] [-ttl D] <path> [data]", 1, 2, false, cmdCreate},
	"delete":       {"[-version N] [-r] <path>", 1, 1, false, cmdDelete},
	"watch":        {"[-r] [-n N] <path>", 1, 1, false, cmdWatch},
	"members":      {"", 0, 0, false, cmdMembers},
	"leader":       {"", 0, 0, false, cmdLeader},
	"stats":        {"[-json]", 0, 0, false, cmdStats},
	"voters":       {"", 0, 0, false, cmdVoters},
	"add-voter":    {"<id>", 1, 1, false, cmdAddVoter},
	"remove-voter": {"<id>", 1, 1, false, cmdRemoveVoter},
	"backup":       {"<file|->", 1, 1, false, cmdBackup},
	"restore":      {"-data-dir D -id N [-cluster C] [-voters V] <file|->", 1, 1, true, cmdRestore},
}

// synced makes the reads that follow linearizable: the observer first
// catches up with everything committed before the command.
func (c *command) synced(ctx context.Context) error { return c.node.Sync(ctx) }

func cmdLs(c *command) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if err := c.synced(ctx); err != nil {
			return err
		}
		kids, _, err := c.node.Children(ctx, c.args[0])
		if err != nil {
			return err
		}
		slices.Sort(kids)
		for _, k := range kids {
			fmt.Fprintln(c.stdout, k)
		}
		return nil
	}
}

func cmdTree(c *command) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		root := "/"
		if len(c.args) == 1 {
			root = c.args[0]
		}
		if err := c.synced(ctx); err != nil {
			return err
		}
		var walk func(p string, depth int) error
		walk = func(p string, depth int) error {
			_, st, err := c.node.Get(ctx, p)
			if err != nil {
				if depth > 0 && errors.Is(err, coord.ErrNoNode) {
					return nil // deleted while we walked
				}
				return err
			}
			name := p
			if depth > 0 {
				name = path.Base(p)
			}
			fmt.Fprintf(c.stdout, "%s%s  (%d bytes)\n", strings.Repeat("  ", depth), name, st.DataLength)
			kids, _, err := c.node.Children(ctx, p)
			if err != nil {
				if errors.Is(err, coord.ErrNoNode) {
					return nil
				}
				return err
			}
			slices.Sort(kids)
			for _, k := range kids {
				if err := walk(path.Join(p, k), depth+1); err != nil {
					return err
				}
			}
			return nil
		}
		return walk(root, 0)
	}
}

func cmdGet(c *command) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if err := c.synced(ctx); err != nil {
			return err
		}
		data, _, err := c.node.Get(ctx, c.args[0])
		if err != nil {
			return err
		}
		_, err = c.stdout.Write(data)
		return err
	}
}

func cmdStat(c *command) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if err := c.synced(ctx); err != nil {
			return err
		}
		_, st, err := c.node.Get(ctx, c.args[0])
		if err != nil {
			return err
		}
		tw := c.table()
		ms := func(v int64) string { return time.UnixMilli(v).UTC().Format(time.RFC3339Nano) }
		for _, row := range [][2]string{
			{"czxid", fmt.Sprintf("%#x", st.Czxid)},
			{"mzxid", fmt.Sprintf("%#x", st.Mzxid)},
			{"pzxid", fmt.Sprintf("%#x", st.Pzxid)},
			{"ctime", ms(st.Ctime)},
			{"mtime", ms(st.Mtime)},
			{"version", strconv.Itoa(int(st.Version))},
			{"cversion", strconv.Itoa(int(st.Cversion))},
			{"ephemeralOwner", fmt.Sprintf("%#x", st.EphemeralOwner)},
			{"dataLength", strconv.Itoa(int(st.DataLength))},
			{"numChildren", strconv.Itoa(int(st.NumChildren))},
		} {
			fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
		}
		return tw.Flush()
	}
}

func cmdSet(c *command) func(ctx context.Context) error {
	version := c.fs.Int("version", -1, "expected version (-1: any)")
	return func(ctx context.Context) error {
		st, err := c.node.Set(ctx, c.args[0], []byte(c.args[1]), int32(*version))
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "version %d\n", st.Version)
		return nil
	}
}

var modes = map[string]coord.CreateMode{
	"persistent":     coord.Persistent,
	"sequential":     coord.PersistentSequential,
	"container":      coord.Container,
	"ttl":            coord.PersistentWithTTL,
	"ttl-sequential": coord.PersistentSequentialWithTTL,
}

func cmdCreate(c *command) func(ctx context.Context) error {
	mode := c.fs.String("mode", "persistent", "persistent, sequential, container, ttl or ttl-sequential (ephemeral nodes would vanish as coordctl exits)")
	ttl := c.fs.Duration("ttl", 0, "time to live of a ttl node")
	return func(ctx context.Context) error {
		m, ok := modes[*mode]
		if !ok {
			return usagef("create: unknown -mode %q", *mode)
		}
		var opts []coord.CreateOption
		if *ttl > 0 {
			opts = append(opts, coord.WithTTL(*ttl))
		}
		var data []byte
		if len(c.args) == 2 {
			data = []byte(c.args[1])
		}
		p, err := c.node.Create(ctx, c.args[0], data, m, opts...)
		if err != nil {
			return err
		}
		fmt.Fprintln(c.stdout, p)
		return nil
	}
}

func cmdDelete(c *command) func(ctx context.Context) error {
	version := c.fs.Int("version", -1, "expected version (-1: any)")
	recursive := c.fs.Bool("r", false, "delete everything below too")
	return func(ctx context.Context) error {
		if !*recursive {
			return c.node.Delete(ctx, c.args[0], int32(*version))
		}
		if err := c.synced(ctx); err != nil {
			return err
		}
		var del func(p string, version int32) error
		del = func(p string, version int32) error {
			kids, _, err := c.node.Children(ctx, p)
			if err != nil {
				return err
			}
			for _, k := range kids {
				if err := del(path.Join(p, k), -1); err != nil && !errors.Is(err, coord.ErrNoNode) {
					return err
				}
			}
			return c.node.Delete(ctx, p, version)
		}
		return del(c.args[0], int32(*version))
	}
}

func cmdWatch(c *command) func(ctx context.Context) error {
	recursive := c.fs.Bool("r", false, "watch the whole subtree")
	count := c.fs.Int("n", 0, "stop after this many events (0: until Ctrl-C)")
	return func(ctx context.Context) error {
		w, err := c.node.Watch(ctx, c.args[0], *recursive)
		if err != nil {
			return err
		}
		defer w.Close()
		fmt.Fprintf(c.stdout, "watching %s\n", c.args[0])
		for seen := 0; *count == 0 || seen < *count; seen++ {
			select {
			case <-ctx.Done():
				if *count == 0 {
					return nil // Ctrl-C ends an endless watch
				}
				return ctx.Err()
			case ev, ok := <-w.C():
				if !ok {
					return coord.ErrClosed
				}
				if ev.Err != nil {
					return ev.Err
				}
				fmt.Fprintf(c.stdout, "%s\t%s\t%#x\n", ev.Type, ev.Path, ev.Zxid)
			}
		}
		return nil
	}
}

func cmdMembers(c *command) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		tw := c.table()
		fmt.Fprintln(tw, "ID\tROLE\tSTATE\tGOSSIP\tREPLICATION\tLEADER")
		leader, _ := c.node.Leader()
		for _, m := range c.node.Members() {
			if m.ID == c.node.ID() {
				continue // coordctl itself
			}
			mark := ""
			if m.ID == leader {
				mark = "*"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.Role, m.State, m.GossipAddr, m.ReplicationAddr, mark)
		}
		return tw.Flush()
	}
}

func cmdLeader(c *command) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		id, epoch := c.node.Leader()
		if id == 0 {
			return errors.New("no leader")
		}
		tw := c.table()
		fmt.Fprintln(tw, "ID\tEPOCH\tREPLICATION")
		addr := ""
		for _, m := range c.node.Members() {
			if m.ID == id {
				addr = m.ReplicationAddr
			}
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\n", id, epoch, addr)
		return tw.Flush()
	}
}

func cmdStats(c *command) func(ctx context.Context) error {
	asJSON := c.fs.Bool("json", false, "print coord.Stats as JSON")
	return func(ctx context.Context) error {
		if err := c.synced(ctx); err != nil {
			return err
		}
		st := c.node.Stats()
		if *asJSON {
			enc := json.NewEncoder(c.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
		tw := c.table()
		for _, row := range [][2]any{
			{"leader", st.Leader}, {"epoch", st.Epoch},
			{"last_zxid", fmt.Sprintf("%#x", st.LastZxid)}, {"committed", fmt.Sprintf("%#x", st.Committed)},
			{"znodes", st.Znodes}, {"sessions", st.Sessions}, {"voters", st.Voters},
			{"gossip_members", st.Gossip.Members}, {"gossip_alive", st.Gossip.Alive},
		} {
			fmt.Fprintf(tw, "%s\t%v\n", row[0], row[1])
		}
		return tw.Flush()
	}
}

func cmdVoters(c *command) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if err := c.synced(ctx); err != nil {
			return err
		}
		state := map[uint64]coord.Member{}
		for _, m := range c.node.Members() {
			state[m.ID] = m
		}
		leader, _ := c.node.Leader()
		tw := c.table()
		fmt.Fprintln(tw, "ID\tSTATE\tLEADER")
		for _, v := range c.node.Voters() {
			s := "unknown" // not in gossip
			if m, ok := state[v]; ok {
				s = m.State.String()
			}
			mark := ""
			if v == leader {
				mark = "*"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\n", v, s, mark)
		}
		return tw.Flush()
	}
}

func voterArg(c *command) (uint64, error) {
	id, err := strconv.ParseUint(c.args[0], 10, 64)
	if err != nil || id == 0 {
		return 0, usagef("%s: %q is not a node id", c.name, c.args[0])
	}
	return id, nil
}

func cmdAddVoter(c *command) func(ctx context.Context) error {
	return reconfig(c, (*coord.Node).AddVoter)
}

func cmdRemoveVoter(c *command) func(ctx context.Context) error {
	return reconfig(c, (*coord.Node).RemoveVoter)
}

// reconfig runs one voter change and prints the voters after it.
func reconfig(c *command, change func(*coord.Node, context.Context, uint64) error) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		id, err := voterArg(c)
		if err != nil {
			return err
		}
		if err := change(c.node, ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "voters %v\n", c.node.Voters())
		return nil
	}
}

// printInfo prints a backup's description.
func (c *command) printInfo(info coord.BackupInfo) error {
	tw := c.table()
	for _, row := range [][2]any{
		{"zxid", fmt.Sprintf("%#x", info.Zxid)}, {"voters", info.Voters},
		{"cluster", info.Cluster}, {"taken_by", info.NodeID},
		{"time", info.Time.UTC().Format(time.RFC3339)}, {"znodes", info.Znodes},
		{"bytes", info.Size}, {"sha256", info.SHA256},
	} {
		fmt.Fprintf(tw, "%s\t%v\n", row[0], row[1])
	}
	return tw.Flush()
}

func cmdBackup(c *command) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if err := c.synced(ctx); err != nil {
			return err
		}
		name := c.args[0]
		if name == "-" {
			_, err := c.node.Backup(ctx, c.stdout)
			return err
		}
		// Written aside and linked in once complete: a failed backup
		// never leaves a file that looks like one.
		tmp := name + ".tmp"
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		info, err := c.node.Backup(ctx, f)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Link(tmp, name) // never over an existing file
		}
		_ = os.Remove(tmp)
		if err != nil {
			return err
		}
		if info, err = readInfo(name); err != nil {
			return err
		}
		return c.printInfo(info)
	}
}

// readInfo verifies a backup file (and counts its znodes).
func readInfo(name string) (coord.BackupInfo, error) {
	f, err := os.Open(name)
	if err != nil {
		return coord.BackupInfo{}, err
	}
	defer f.Close()
	return coord.ReadBackup(f)
}

func cmdRestore(c *command) func(ctx context.Context) error {
	dir := c.fs.String("data-dir", "", "the new node's DataDir (must not hold data)")
	id := c.fs.Uint64("id", 0, "the new node's NodeID")
	cluster := c.fs.String("cluster", "", "the new cluster's name (default coord)")
	voters := c.fs.String("voters", "", "the new cluster's Voters (default: the backup's)")
	return func(ctx context.Context) error {
		if *dir == "" || *id == 0 {
			return usagef("restore: -data-dir and -id are required")
		}
		opts := coord.RestoreOptions{DataDir: *dir, NodeID: *id, Cluster: *cluster}
		if *voters != "" {
			vs, err := parseIDs(*voters)
			if err != nil {
				return usagef("restore: -voters: %v", err)
			}
			opts.Voters = vs
		}
		var r io.Reader = c.stdin
		if c.args[0] != "-" {
			f, err := os.Open(c.args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			r = f
		}
		info, err := coord.Restore(r, opts)
		if err != nil {
			return err
		}
		return c.printInfo(info)
	}
}
