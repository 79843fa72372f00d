// Package admin serves a coord node's health and state over HTTP, for load
// balancers, orchestrators (Kubernetes probes) and operators. Mount the
// handler New returns on a mux of your own service:
//
//	mux.Handle("/coord/", http.StripPrefix("/coord", admin.New(node, admin.Options{})))
//
// Its endpoints (GET or HEAD; other methods get 405) answer JSON:
//
//	/livez    200 while the node is open and its replication runs, else 503
//	          (with the reason of a fail-stop, Node.Err, in "error")
//	/readyz   200 while the node is synced with an established leader (or
//	          is one) and serves reads and writes, else 503
//	/stats    coord.Stats (numbers; durations in nanoseconds, _ns names)
//	/members  the members gossip sees, with role and state
//	/leader   the leader this node follows and its epoch; 503 while none
//	/metrics  Options.Metrics, if set (coord/admin/prom serves Prometheus
//	          metrics without this package importing client_golang)
//
// A liveness probe should restart a replica only when /livez fails: a node
// that is merely not ready (an election, a partition) heals by itself, and
// restarting it then would only lengthen the outage. Use /readyz to route
// traffic. The handler reads local state only and never blocks on the
// cluster, so probes answer at once even without a quorum.
package admin

import (
	"encoding/json"
	"net/http"

	"github.com/coord-dev/coord/coord"
)

// Options configure the handler.
type Options struct {
	// Metrics, if set, is served at /metrics (for example
	// prom.Handler(node) from coord/admin/prom).
	Metrics http.Handler
}

// Health is the body of /livez and /readyz.
type Health struct {
	// Status is "ok", or why the check fails.
	Status  string `json:"status"`
	ID      uint64 `json:"id"`
	Role    string `json:"role"`
	Running bool   `json:"running"`
	Serving bool   `json:"serving"`
	Leader  uint64 `json:"leader"`
	// Error is why the node fail-stopped (Node.Err), if it did.
	Error string `json:"error,omitempty"`
}

// Member is one entry of /members.
type Member struct {
	ID              uint64 `json:"id"`
	GossipAddr      string `json:"gossip_addr"`
	ReplicationAddr string `json:"replication_addr"`
	// Role is "voter" or "observer" in the configuration in force here.
	Role string `json:"role"`
	// State is "alive", "suspect", "dead" or "left".
	State string `json:"state"`
}

// Leader is the body of /leader.
type Leader struct {
	// ID is the leader's id, 0 while there is none (then the status is 503).
	ID    uint64 `json:"id"`
	Epoch uint32 `json:"epoch"`
	// Self is true when this node leads.
	Self bool `json:"self"`
}

// New returns the handler for node n.
func New(n *coord.Node, opts Options) http.Handler {
	h := &handler{n: n}
	mux := http.NewServeMux()
	mux.HandleFunc("/livez", h.livez)
	mux.HandleFunc("/readyz", h.readyz)
	mux.HandleFunc("/stats", h.stats)
	mux.HandleFunc("/members", h.members)
	mux.HandleFunc("/leader", h.leader)
	if opts.Metrics != nil {
		mux.Handle("/metrics", opts.Metrics)
	}
	return readOnly(mux)
}

type handler struct{ n *coord.Node }

// readOnly refuses methods other than GET and HEAD.
func readOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (h *handler) health(st coord.Stats) Health {
	hl := Health{Status: "ok", ID: st.ID, Role: st.Role, Running: st.Running, Serving: st.Serving, Leader: st.Leader}
	if err := h.n.Err(); err != nil {
		hl.Error = err.Error()
	}
	return hl
}

func (h *handler) livez(w http.ResponseWriter, _ *http.Request) {
	hl := h.health(h.n.Stats())
	code := http.StatusOK
	if !hl.Running {
		hl.Status, code = "not running: the node is closed or its replication stopped", http.StatusServiceUnavailable
	}
	writeJSON(w, code, hl)
}

func (h *handler) readyz(w http.ResponseWriter, _ *http.Request) {
	hl := h.health(h.n.Stats())
	code := http.StatusOK
	switch {
	case !hl.Running:
		hl.Status, code = "not running: the node is closed or its replication stopped", http.StatusServiceUnavailable
	case !hl.Serving:
		hl.Status, code = "not serving: no established leader, or not synced with it", http.StatusServiceUnavailable
	}
	writeJSON(w, code, hl)
}

func (h *handler) stats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, h.n.Stats())
}

func (h *handler) members(w http.ResponseWriter, _ *http.Request) {
	ms := h.n.Members()
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, Member{ID: m.ID, GossipAddr: m.GossipAddr, ReplicationAddr: m.ReplicationAddr,
			Role: m.Role.String(), State: m.State.String()})
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) leader(w http.ResponseWriter, _ *http.Request) {
	id, epoch := h.n.Leader()
	code := http.StatusOK
	if id == 0 {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, Leader{ID: id, Epoch: epoch, Self: id != 0 && id == h.n.ID()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
