package sim

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
)

// Kind is what a client operation does.
type Kind uint8

// The operations the clients issue. Every write goes through zab; Read is a
// Sync followed by a local get, the only read coord promises to be
// linearizable (a plain local get is sequentially consistent only).
const (
	Create    Kind = iota + 1 // persistent create of Path
	CreateSeq                 // persistent sequential create of Path + %010d
	Delete                    // delete Path at Version (-1 = any)
	Set                       // set Path's data at Version (-1 = any; else a CAS)
	Check                     // version check (inside a Multi only)
	Multi                     // Ops, all or nothing
	Read                      // Sync, then get Path on the same node
)

var kindNames = [...]string{"", "create", "createSeq", "delete", "set", "check", "multi", "read"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Input is one client operation as the model sees it.
type Input struct {
	Kind    Kind
	Path    string
	Data    string
	Version int32
	Ops     []Input // Multi only
}

// Code is an operation's outcome class: the tree's sentinel errors that the
// workload can provoke.
type Code uint8

// Outcome classes.
const (
	OK Code = iota
	NoNode
	NodeExists
	BadVersion
	NotEmpty
	OtherErr
)

var codeNames = [...]string{"ok", "NoNode", "NodeExists", "BadVersion", "NotEmpty", "error"}

func (c Code) String() string { return codeNames[c] }

// Output is what a client saw. Unknown marks a write whose outcome the client
// never learned: the model accepts it having taken effect at any point after
// its call, or never.
type Output struct {
	Unknown bool
	Code    Code
	Path    string   // created path
	Version int32    // the node's version after a create or set, or as read
	Data    string   // as read
	Failed  int      // Multi: index of the failing op, -1 if none
	Results []Output // Multi: per-op results when it succeeded
}

type znode struct {
	data    string
	version int32
}

// state is the model's znode tree, flattened: path -> node, and each
// parent's cversion (the sequence counter of sequential creates). States are
// immutable; step copies on write.
type state struct {
	nodes map[string]znode
	cver  map[string]int32
}

func parentOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

func (s state) clone() state {
	return state{nodes: maps.Clone(s.nodes), cver: maps.Clone(s.cver)}
}

func (s state) hasChildren(p string) bool {
	prefix := p + "/"
	if p == "/" {
		prefix = "/"
	}
	for q := range s.nodes {
		if q != p && strings.HasPrefix(q, prefix) {
			return true
		}
	}
	return false
}

// apply runs one op on a mutable working copy (ws) and returns its result.
// A failed op leaves ws unchanged.
func (ws state) apply(in Input) Output {
	switch in.Kind {
	case Create, CreateSeq:
		parent := parentOf(in.Path)
		if in.Kind == CreateSeq {
			parent = parentOf(in.Path + "x")
		}
		if _, ok := ws.nodes[parent]; !ok && parent != "/" {
			return Output{Code: NoNode, Failed: -1}
		}
		p := in.Path
		if in.Kind == CreateSeq {
			p = fmt.Sprintf("%s%010d", p, ws.cver[parent])
		}
		if _, ok := ws.nodes[p]; ok {
			return Output{Code: NodeExists, Failed: -1}
		}
		ws.nodes[p] = znode{data: in.Data}
		ws.cver[parent]++
		return Output{Code: OK, Path: p, Failed: -1}
	case Delete:
		n, ok := ws.nodes[in.Path]
		switch {
		case !ok:
			return Output{Code: NoNode, Failed: -1}
		case in.Version != -1 && in.Version != n.version:
			return Output{Code: BadVersion, Failed: -1}
		case ws.hasChildren(in.Path):
			return Output{Code: NotEmpty, Failed: -1}
		}
		delete(ws.nodes, in.Path)
		ws.cver[parentOf(in.Path)]++
		return Output{Code: OK, Failed: -1}
	case Set:
		n, ok := ws.nodes[in.Path]
		switch {
		case !ok:
			return Output{Code: NoNode, Failed: -1}
		case in.Version != -1 && in.Version != n.version:
			return Output{Code: BadVersion, Failed: -1}
		}
		n.data, n.version = in.Data, n.version+1
		ws.nodes[in.Path] = n
		return Output{Code: OK, Version: n.version, Failed: -1}
	case Check:
		n, ok := ws.nodes[in.Path]
		switch {
		case !ok:
			return Output{Code: NoNode, Failed: -1}
		case in.Version != -1 && in.Version != n.version:
			return Output{Code: BadVersion, Failed: -1}
		}
		return Output{Code: OK, Failed: -1}
	case Read:
		n, ok := ws.nodes[in.Path]
		if !ok {
			return Output{Code: NoNode, Failed: -1}
		}
		return Output{Code: OK, Data: n.data, Version: n.version, Failed: -1}
	case Multi:
		try := ws.clone()
		res := Output{Code: OK, Failed: -1, Results: make([]Output, len(in.Ops))}
		for i, op := range in.Ops {
			r := try.apply(op)
			if r.Code != OK {
				return Output{Code: r.Code, Failed: i}
			}
			res.Results[i] = r
		}
		clear(ws.nodes)
		maps.Copy(ws.nodes, try.nodes)
		clear(ws.cver)
		maps.Copy(ws.cver, try.cver)
		return res
	}
	return Output{Code: OtherErr, Failed: -1}
}

func sameOutput(a, b Output) bool {
	if a.Code != b.Code || a.Path != b.Path || a.Version != b.Version || a.Data != b.Data || a.Failed != b.Failed ||
		len(a.Results) != len(b.Results) {
		return false
	}
	for i := range a.Results {
		if !sameOutput(a.Results[i], b.Results[i]) {
			return false
		}
	}
	return true
}

// initialState is the tree every run starts its history from: the
// workload's setup creates /q (the parent of sequential nodes) before the
// first recorded call.
func initialState() state {
	return state{nodes: map[string]znode{"/q": {}}, cver: map[string]int32{"/": 1}}
}

// Model is the porcupine specification of the znode subset the workload
// uses. A write whose Output is Unknown may or may not have happened.
func Model() porcupine.Model {
	return porcupine.Model{
		Init: func() any { return initialState() },
		Step: func(st, in, out any) (bool, any) {
			next := st.(state).clone()
			got := out.(Output)
			want := next.apply(in.(Input))
			if got.Unknown {
				return true, next
			}
			if !sameOutput(want, got) {
				return false, st
			}
			return true, next
		},
		Equal: func(a, b any) bool {
			x, y := a.(state), b.(state)
			return maps.Equal(x.nodes, y.nodes) && maps.Equal(x.cver, y.cver)
		},
		Hash: func(st any) uint64 {
			// Order-independent: a sum of per-entry hashes.
			s := st.(state)
			var sum uint64
			for k, n := range s.nodes {
				sum += mix(hashString(hashString(fnvOffset, k), n.data) ^ uint64(uint32(n.version)))
			}
			for k, v := range s.cver {
				sum += mix(hashString(fnvOffset^1, k) ^ uint64(uint32(v)))
			}
			return sum
		},
		DescribeOperation: func(in, out any) string { return describeOp(in.(Input), out.(Output)) },
		DescribeState: func(st any) string {
			s := st.(state)
			var b strings.Builder
			for _, k := range slices.Sorted(maps.Keys(s.nodes)) {
				n := s.nodes[k]
				fmt.Fprintf(&b, "%s=%q@v%d ", k, n.data, n.version)
			}
			for _, k := range slices.Sorted(maps.Keys(s.cver)) {
				fmt.Fprintf(&b, "cversion(%s)=%d ", k, s.cver[k])
			}
			return b.String()
		},
	}
}

const fnvOffset = 14695981039346656037

func hashString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func describeInput(in Input) string {
	switch in.Kind {
	case Create, CreateSeq, Set:
		if in.Kind == Set && in.Version != -1 {
			return fmt.Sprintf("cas(%s, %q, v%d)", in.Path, in.Data, in.Version)
		}
		return fmt.Sprintf("%s(%s, %q)", in.Kind, in.Path, in.Data)
	case Delete, Check:
		return fmt.Sprintf("%s(%s, v%d)", in.Kind, in.Path, in.Version)
	case Read:
		return fmt.Sprintf("read(%s)", in.Path)
	case Multi:
		parts := make([]string, len(in.Ops))
		for i, op := range in.Ops {
			parts[i] = describeInput(op)
		}
		return "multi[" + strings.Join(parts, ", ") + "]"
	}
	return in.Kind.String()
}

func describeOutput(out Output) string {
	switch {
	case out.Unknown:
		return "unknown"
	case out.Code != OK && out.Failed >= 0:
		return fmt.Sprintf("%s at op %d", out.Code, out.Failed)
	case out.Code != OK:
		return out.Code.String()
	case out.Results != nil:
		parts := make([]string, len(out.Results))
		for i, r := range out.Results {
			parts[i] = describeOutput(r)
		}
		return "ok[" + strings.Join(parts, ", ") + "]"
	case out.Path != "":
		return out.Path
	case out.Data != "" || out.Version != 0:
		return fmt.Sprintf("%q@v%d", out.Data, out.Version)
	}
	return "ok"
}

func describeOp(in Input, out Output) string {
	return describeInput(in) + " -> " + describeOutput(out)
}
