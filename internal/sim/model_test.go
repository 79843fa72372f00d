package sim

import (
	"math/rand/v2"
	"testing"

	"github.com/anishathalye/porcupine"

	"github.com/coord-dev/coord/tree"
)

func op(client int, call, ret int64, in Input, out Output) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

func ok() Output                    { return Output{Code: OK, Failed: -1} }
func okPath(p string) Output        { return Output{Code: OK, Path: p, Failed: -1} }
func okVer(v int32) Output          { return Output{Code: OK, Version: v, Failed: -1} }
func read(d string, v int32) Output { return Output{Code: OK, Data: d, Version: v, Failed: -1} }
func fail(c Code) Output            { return Output{Code: c, Failed: -1} }

// TestModel checks the model on small hand-made histories, each
// linearizable or not by construction.
func TestModel(t *testing.T) {
	create := func(p, d string) Input { return Input{Kind: Create, Path: p, Data: d} }
	set := func(p, d string, v int32) Input { return Input{Kind: Set, Path: p, Data: d, Version: v} }
	rd := func(p string) Input { return Input{Kind: Read, Path: p} }
	tests := []struct {
		name string
		hist []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"create then read", []porcupine.Operation{
			op(0, 0, 1, create("/a", "x"), okPath("/a")),
			op(1, 2, 3, rd("/a"), read("x", 0)),
		}, porcupine.Ok},
		{"stale read after a completed write", []porcupine.Operation{
			op(0, 0, 1, create("/a", "x"), okPath("/a")),
			op(1, 2, 3, rd("/a"), fail(NoNode)),
		}, porcupine.Illegal},
		{"concurrent read may miss the write", []porcupine.Operation{
			op(0, 0, 5, create("/a", "x"), okPath("/a")),
			op(1, 1, 2, rd("/a"), fail(NoNode)),
		}, porcupine.Ok},
		{"cas versions", []porcupine.Operation{
			op(0, 0, 1, create("/a", "x"), okPath("/a")),
			op(0, 2, 3, set("/a", "y", 0), okVer(1)),
			op(1, 4, 5, set("/a", "z", 0), fail(BadVersion)),
			op(1, 6, 7, rd("/a"), read("y", 1)),
		}, porcupine.Ok},
		{"a write applied twice shows in the version", []porcupine.Operation{
			op(0, 0, 1, create("/a", "x"), okPath("/a")),
			op(0, 2, 3, set("/a", "y", -1), okVer(1)),
			op(1, 4, 5, rd("/a"), read("y", 2)),
		}, porcupine.Illegal},
		{"sequential names follow the parent's cversion", []porcupine.Operation{
			op(0, 0, 1, Input{Kind: CreateSeq, Path: "/q/s-", Data: "a"}, okPath("/q/s-0000000000")),
			op(0, 2, 3, Input{Kind: Delete, Path: "/q/s-0000000000", Version: -1}, ok()),
			op(1, 4, 5, Input{Kind: CreateSeq, Path: "/q/s-", Data: "b"}, okPath("/q/s-0000000002")),
		}, porcupine.Ok},
		{"a sequential name reused", []porcupine.Operation{
			op(0, 0, 1, Input{Kind: CreateSeq, Path: "/q/s-", Data: "a"}, okPath("/q/s-0000000000")),
			op(1, 2, 3, Input{Kind: CreateSeq, Path: "/q/s-", Data: "b"}, okPath("/q/s-0000000000")),
		}, porcupine.Illegal},
		{"multi is all or nothing", []porcupine.Operation{
			op(0, 0, 1, Input{Kind: Multi, Ops: []Input{create("/a", "x"), {Kind: Check, Path: "/b", Version: -1}}},
				Output{Code: NoNode, Failed: 1}),
			op(1, 2, 3, rd("/a"), read("x", 0)),
		}, porcupine.Illegal},
		{"unknown write may apply late", []porcupine.Operation{
			op(0, 0, pendingReturn, create("/a", "x"), Output{Unknown: true}),
			op(1, 2, 3, rd("/a"), fail(NoNode)),
			op(1, 4, 5, rd("/a"), read("x", 0)),
		}, porcupine.Ok},
		{"unknown write cannot apply twice", []porcupine.Operation{
			op(0, 0, 1, create("/a", "x"), okPath("/a")),
			op(0, 2, pendingReturn, set("/a", "y", -1), Output{Unknown: true}),
			op(1, 3, 4, rd("/a"), read("y", 1)),
			op(1, 5, 6, rd("/a"), read("y", 2)),
		}, porcupine.Illegal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := porcupine.CheckOperations(Model(), tc.hist); got != (tc.want == porcupine.Ok) {
				t.Fatalf("linearizable = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestModelMatchesTree runs the workload's ops sequentially on a tree and on
// the model: every output must agree, so the model is the tree's spec.
func TestModelMatchesTree(t *testing.T) {
	tr := tree.New(treeOptions)
	z := int64(1)
	tr.Apply(tree.Txn{Zxid: z, Op: toOp(Input{Kind: Create, Path: "/q"})})
	st := initialState()
	r := &runner{rng: newRand(7)}
	cl := &client{version: map[string]int32{}}
	for i := range 5000 {
		in := r.nextOp(cl)
		var got Output
		if in.Kind == Read {
			data, s, err := tr.Get(in.Path, nil)
			got = Output{Code: codeOf(err), Failed: -1}
			if err == nil {
				got.Data, got.Version = string(data), s.Version
			}
		} else {
			z++
			got = outputOf(tr.Apply(tree.Txn{Zxid: z, Time: z, ReqID: uint64(z), Op: toOp(in)}))
		}
		want := st.apply(in)
		if !sameOutput(want, got) {
			t.Fatalf("op %d %s: tree %s, model %s", i, describeInput(in), describeOutput(got), describeOutput(want))
		}
		if got.Code == OK && in.Kind == CreateSeq {
			cl.created = append(cl.created, got.Path)
		}
		if got.Code == OK && (in.Kind == Read || in.Kind == Set) {
			cl.version[in.Path] = got.Version
		}
	}
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0)) }
