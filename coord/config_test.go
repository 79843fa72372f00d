package coord

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coord-dev/coord/internal/gossip"
)

// validLocal is a LocalConfig that passes Validate: node 1 of voters 1..3.
func validLocal() Config {
	c := LocalConfig(1)
	c.Voters = []uint64{1, 2, 3}
	return c
}

func TestPresetsValidate(t *testing.T) {
	for name, c := range map[string]Config{"LocalConfig": LocalConfig(7), "LANConfig": LANConfig(7)} {
		c.Voters = []uint64{7}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		c.Voters = nil
		c.BootstrapExpect = 3
		if err := c.Validate(); err != nil {
			t.Errorf("%s with BootstrapExpect: %v", name, err)
		}
	}
}

func TestLocalConfigFailsOverFast(t *testing.T) {
	c := LocalConfig(1)
	// A follower gives up on its leader after SyncLimit, then needs one or
	// two election rounds (each at most 2×ElectionTimeout with jitter).
	if worst := c.SyncLimit + 4*c.ElectionTimeout; worst >= time.Second {
		t.Fatalf("worst-case fail-over %v, want well under a second", worst)
	}
	if c.DefaultSessionTimeout <= c.SyncLimit+4*c.ElectionTimeout {
		t.Fatalf("default session timeout %v does not outlive a fail-over", c.DefaultSessionTimeout)
	}
}

func TestValidateMinimalConfigUsesDefaults(t *testing.T) {
	// A user sets only what matters to them; the rest comes from LANConfig.
	c := Config{NodeID: 2, Voters: []uint64{1, 2, 3}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	d := c.withDefaults()
	lan := LANConfig(2)
	if d.TickInterval != lan.TickInterval || d.GossipBindAddr != lan.GossipBindAddr ||
		d.MaxDataSize != 1<<20 || d.Cluster != "coord" || d.SnapshotRetain != lan.SnapshotRetain {
		t.Fatalf("defaults not applied: %+v", d)
	}
	// Explicit values are kept.
	c.TickInterval = 5 * time.Millisecond
	c.Cluster = "payments"
	d = c.withDefaults()
	if d.TickInterval != 5*time.Millisecond || d.Cluster != "payments" {
		t.Fatalf("explicit values overwritten: %+v", d)
	}
}

func TestWithDefaultsCopiesSlices(t *testing.T) {
	c := validLocal()
	c.Seeds = []string{"127.0.0.1:7000"}
	c.SecretKey = make([]byte, 16)
	d := c.withDefaults()
	c.Voters[0] = 99
	c.Seeds[0] = "changed"
	c.SecretKey[0] = 1
	if d.Voters[0] != 1 || d.Seeds[0] != "127.0.0.1:7000" || d.SecretKey[0] != 0 {
		t.Fatal("withDefaults shares slices with the caller")
	}
}

func TestValidateRules(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		field  string // a problem must name this field
		text   string // and contain this text
	}{
		{"zero node id", func(c *Config) { c.NodeID = 0 }, "NodeID", "non-zero"},
		{"cluster chars", func(c *Config) { c.Cluster = "a b" }, "Cluster", "letters"},
		{"cluster length", func(c *Config) { c.Cluster = strings.Repeat("x", 65) }, "Cluster", "at most 64"},
		{"gossip bind not host:port", func(c *Config) { c.GossipBindAddr = "127.0.0.1" }, "GossipBindAddr", "host:port"},
		{"gossip bind host name", func(c *Config) { c.GossipBindAddr = "localhost:0" }, "GossipBindAddr", "IP literal"},
		{"gossip bind bad port", func(c *Config) { c.GossipBindAddr = "127.0.0.1:70000" }, "GossipBindAddr", "port"},
		{"gossip advertise unspecified", func(c *Config) { c.GossipAdvertiseAddr = "0.0.0.0:7946" }, "GossipAdvertiseAddr", "cannot be dialled"},
		{"gossip advertise host name", func(c *Config) { c.GossipAdvertiseAddr = "node1:7946" }, "GossipAdvertiseAddr", "IP literal"},
		{"ipv6 wildcard without advertise", func(c *Config) { c.GossipBindAddr = "[::]:7946" }, "GossipAdvertiseAddr", "IPv6 wildcard"},
		{"replication bind missing host", func(c *Config) { c.ReplicationBindAddr = ":2888" }, "ReplicationBindAddr", "missing host"},
		{"replication advertise bad", func(c *Config) { c.ReplicationAdvertiseAddr = "node1" }, "ReplicationAdvertiseAddr", "host:port"},
		{"same ports", func(c *Config) {
			c.GossipBindAddr = "127.0.0.1:9000"
			c.ReplicationBindAddr = "0.0.0.0:9000"
		}, "ReplicationBindAddr", "same port"},
		{"seed port 0", func(c *Config) { c.Seeds = []string{"127.0.0.1:7946", "10.0.0.1:0"} }, "Seeds[1]", "port 0"},
		{"seed garbage", func(c *Config) { c.Seeds = []string{"nope"} }, "Seeds[0]", "host:port"},
		{"voters and expect", func(c *Config) { c.BootstrapExpect = 3 }, "Voters", "exactly one"},
		{"neither voters nor expect", func(c *Config) { c.Voters = nil }, "Voters", "exactly one"},
		{"negative expect", func(c *Config) { c.Voters = nil; c.BootstrapExpect = -1 }, "BootstrapExpect", "negative"},
		{"zero voter", func(c *Config) { c.Voters = []uint64{1, 0, 3} }, "Voters", "Voters[1] is 0"},
		{"duplicate voter", func(c *Config) { c.Voters = []uint64{1, 2, 2} }, "Voters", "listed twice"},
		{"voter not in voters", func(c *Config) { c.Voters = []uint64{2, 3, 4} }, "Voters", "not in Voters"},
		{"observer in voters", func(c *Config) { c.Role = RoleObserver }, "Role", "observer node 1 is listed"},
		{"unknown role", func(c *Config) { c.Role = 7 }, "Role", "neither"},
		{"negative tick", func(c *Config) { c.TickInterval = -time.Second }, "TickInterval", "positive"},
		{"tiny tick", func(c *Config) { c.TickInterval = time.Microsecond }, "TickInterval", "at least"},
		{"heartbeat below tick", func(c *Config) { c.HeartbeatInterval = 5 * time.Millisecond }, "HeartbeatInterval", "shorter than TickInterval"},
		{"election below heartbeat", func(c *Config) { c.ElectionTimeout = 20 * time.Millisecond }, "ElectionTimeout", "exceed HeartbeatInterval"},
		{"election below 2 ticks", func(c *Config) {
			c.HeartbeatInterval = 10 * time.Millisecond
			c.ElectionTimeout = 15 * time.Millisecond
		}, "ElectionTimeout", "2 ticks"},
		{"sync limit below 3 ticks", func(c *Config) { c.SyncLimit = 25 * time.Millisecond }, "SyncLimit", "3 ticks"},
		{"sync limit below heartbeat", func(c *Config) { c.HeartbeatInterval = 40 * time.Millisecond; c.SyncLimit = 40 * time.Millisecond }, "SyncLimit", "exceed HeartbeatInterval"},
		{"join below election", func(c *Config) { c.JoinTimeout = 10 * time.Millisecond }, "JoinTimeout", "shorter than ElectionTimeout"},
		{"negative join", func(c *Config) { c.JoinTimeout = -1 }, "JoinTimeout", "positive"},
		{"session min above default", func(c *Config) { c.MinSessionTimeout = 3 * time.Second }, "MinSessionTimeout", "above DefaultSessionTimeout"},
		{"session max below default", func(c *Config) { c.MaxSessionTimeout = time.Second }, "MaxSessionTimeout", "below DefaultSessionTimeout"},
		{"session min below 2 ticks", func(c *Config) { c.MinSessionTimeout = 15 * time.Millisecond }, "MinSessionTimeout", "2 ticks"},
		{"negative session", func(c *Config) { c.DefaultSessionTimeout = -time.Second }, "DefaultSessionTimeout", "positive"},
		{"data size too big", func(c *Config) { c.MaxDataSize = 7<<20 + 1 }, "MaxDataSize", "must be in"},
		{"data size negative", func(c *Config) { c.MaxDataSize = -1 }, "MaxDataSize", "must be in"},
		{"snapshot every negative", func(c *Config) { c.SnapshotEvery = -5 }, "SnapshotEvery", "positive"},
		{"snapshot retain negative", func(c *Config) { c.SnapshotRetain = -1 }, "SnapshotRetain", "at least 1"},
		{"probe too fast", func(c *Config) { c.GossipProbeInterval = time.Millisecond }, "GossipProbeInterval", "at least 10ms"},
		{"heal below probe", func(c *Config) { c.GossipHealInterval = 50 * time.Millisecond }, "GossipHealInterval", "shorter than GossipProbeInterval"},
		{"key length", func(c *Config) { c.SecretKey = make([]byte, 20) }, "SecretKey", "16, 24 or 32"},
		{"expvar spaces", func(c *Config) { c.ExpvarName = "my node" }, "ExpvarName", "without spaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validLocal()
			tt.mutate(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted the config")
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error does not wrap ErrInvalidConfig: %v", err)
			}
			if !hasProblem(err, tt.field, tt.text) {
				t.Fatalf("no problem naming %s with %q in:\n%v", tt.field, tt.text, err)
			}
		})
	}
}

// hasProblem reports whether one of err's joined problems starts with the
// field name (after the sentinel's text) and contains text.
func hasProblem(err error, field, text string) bool {
	for _, p := range problems(err) {
		msg := strings.TrimPrefix(p.Error(), ErrInvalidConfig.Error()+": ")
		if strings.HasPrefix(msg, field+":") && strings.Contains(msg, text) {
			return true
		}
	}
	return false
}

func problems(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestValidateReportsAllProblems(t *testing.T) {
	c := validLocal()
	c.NodeID = 0
	c.Cluster = "bad name"
	c.SecretKey = []byte("short")
	c.MinSessionTimeout = time.Hour
	err := c.Validate()
	ps := problems(err)
	if len(ps) < 4 {
		t.Fatalf("got %d problems, want at least 4:\n%v", len(ps), err)
	}
	for _, p := range ps {
		if !errors.Is(p, ErrInvalidConfig) {
			t.Errorf("problem %q does not wrap ErrInvalidConfig", p)
		}
	}
	for _, f := range []string{"NodeID", "Cluster", "SecretKey", "MinSessionTimeout"} {
		if !strings.Contains(err.Error(), f+":") {
			t.Errorf("no problem names %s:\n%v", f, err)
		}
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"observer outside voters", func(c *Config) { c.NodeID = 4; c.Role = RoleObserver }},
		{"bootstrap expect voter", func(c *Config) { c.Voters = nil; c.BootstrapExpect = 3 }},
		{"bootstrap expect observer", func(c *Config) { c.Voters = nil; c.BootstrapExpect = 3; c.Role = RoleObserver }},
		{"keys", func(c *Config) { c.SecretKey = make([]byte, 32) }},
		{"ipv6 and host names", func(c *Config) {
			c.GossipBindAddr = "[::1]:0"
			c.ReplicationAdvertiseAddr = "node1.example:2888"
			c.GossipAdvertiseAddr = "[::1]:0"
			c.Seeds = []string{"node2.example:7946", "[::1]:7946"}
		}},
		{"bind all interfaces", func(c *Config) { c.GossipBindAddr = "0.0.0.0:7946"; c.ReplicationBindAddr = "0.0.0.0:2888" }},
		{"both ports zero", func(c *Config) { c.GossipBindAddr = "127.0.0.1:0"; c.ReplicationBindAddr = "127.0.0.1:0" }},
		{"expvar", func(c *Config) { c.ExpvarName = "coord.node1" }},
		{"data dir", func(c *Config) { c.DataDir = t.TempDir() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validLocal()
			tt.mutate(&c)
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestTicks(t *testing.T) {
	c := LocalConfig(1)
	for _, tt := range []struct {
		d    time.Duration
		want int
	}{{0, 1}, {time.Millisecond, 1}, {10 * time.Millisecond, 1}, {11 * time.Millisecond, 2}, {150 * time.Millisecond, 15}} {
		if got := c.ticks(tt.d); got != tt.want {
			t.Errorf("ticks(%v) = %d, want %d", tt.d, got, tt.want)
		}
	}
}

func TestRoleString(t *testing.T) {
	if RoleVoter.String() != "voter" || RoleObserver.String() != "observer" || Role(9).String() != "Role(9)" {
		t.Fatal("Role.String")
	}
}

func TestGossipConfig(t *testing.T) {
	c := validLocal()
	c.NodeID = 4
	c.Role = RoleObserver
	c.Cluster = "payments"
	c.Seeds = []string{"127.0.0.1:7001"}
	c.SecretKey = make([]byte, 16)
	c = c.withDefaults()
	g := c.gossipConfig("127.0.0.1:2888")
	if g.NodeID != 4 || g.Cluster != "payments" || g.BindAddr != "127.0.0.1:0" || g.Meta.Role != gossip.RoleObserver ||
		g.Meta.ReplicationAddr != "127.0.0.1:2888" || g.ProbeInterval != c.GossipProbeInterval ||
		g.HealInterval != c.GossipHealInterval || len(g.SecretKey) != 16 || g.Seeds[0] != "127.0.0.1:7001" {
		t.Fatalf("%+v", g)
	}
	c.Role = RoleVoter
	if c.gossipConfig("h:1").Meta.Role != gossip.RoleVoter {
		t.Fatal("voter role not mapped")
	}
	// The presets produce configurations the gossip layer accepts.
	for _, p := range []Config{LocalConfig(1), LANConfig(1)} {
		p.GossipBindAddr = "127.0.0.1:0"
		g, err := gossip.New(p.withDefaults().gossipConfig("127.0.0.1:2888"))
		if err != nil {
			t.Fatal(err)
		}
		g.Close()
	}
}

func TestReplicationAdvertiseAddr(t *testing.T) {
	for _, tt := range []struct{ adv, bound, gossip, want string }{
		{"", "127.0.0.1:4000", "127.0.0.1:5000", "127.0.0.1:4000"},
		{"", "0.0.0.0:4000", "10.1.2.3:7946", "10.1.2.3:4000"},
		{"db1.example:0", "0.0.0.0:4000", "10.1.2.3:7946", "db1.example:4000"},
		{"10.9.9.9:2888", "0.0.0.0:4000", "10.1.2.3:7946", "10.9.9.9:2888"},
	} {
		c := Config{ReplicationAdvertiseAddr: tt.adv}
		got, err := c.replicationAdvertiseAddr(tt.bound, tt.gossip)
		if err != nil || got != tt.want {
			t.Errorf("%+v: got %q, %v", tt, got, err)
		}
	}
}
