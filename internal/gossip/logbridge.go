package gossip

import (
	"context"
	"log/slog"
	"strings"
)

// logBridge turns memberlist's log.Logger lines ("[LEVEL] memberlist: msg")
// into slog records at Debug on the Gossip's logger (which carries the node
// id). memberlist is chatty at every level during partitions, so only
// refused traffic (wrong label or key) is raised to Warn, rate limited,
// because that is an operator's problem, not the network's.
type logBridge struct{ g *Gossip }

// securityMarks are fragments of memberlist's messages for traffic refused
// because of the label or the key (net.go, security.go in v0.7.0).
var securityMarks = []struct{ frag, reason string }{
	{"unacceptable label", "wrong cluster label"},
	{"could decrypt", "wrong secret key"},
	{"decrypt packet failed", "wrong secret key"},
	{"encryption is not configured", "peer encrypts but this node has no key"},
	{"remote state is not encrypted", "peer has no secret key"},
}

// Write handles one log line; log.Logger calls it once per message.
func (b *logBridge) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := ""
	if strings.HasPrefix(line, "[") {
		if i := strings.IndexByte(line, ']'); i > 0 {
			level, line = line[1:i], strings.TrimSpace(line[i+1:])
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	lower := strings.ToLower(line)
	for _, m := range securityMarks {
		if strings.Contains(lower, m.frag) {
			b.g.authFail.Add(1)
			b.g.mu.Lock()
			b.g.warnLimited("auth "+m.reason, "refused gossip traffic", "reason", m.reason, "detail", line)
			b.g.mu.Unlock()
			break
		}
	}
	b.g.log.LogAttrs(context.Background(), slog.LevelDebug, line, slog.String("src", "memberlist"), slog.String("level", level))
	return len(p), nil
}
