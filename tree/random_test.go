package tree

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tree tests (0 = time-based)")

// testSeed returns the seed to use and logs it so any failure replays with
// go test ./tree -run <name> -seed <seed>.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay with: go test ./tree -run '^%s$' -seed %d", t.Name(), seed)
		}
	})
	return seed
}

// txnGen generates random but plausible txns: a small namespace so ops
// collide, every op type, multis, sessions, reaps and bad versions.
type txnGen struct {
	r        *rand.Rand
	zxid     int64
	now      int64
	sessions []int64
	nextSess int64
}

func newTxnGen(seed uint64) *txnGen {
	return &txnGen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: 1_700_000_000_000, nextSess: 1}
}

var genNames = []string{"a", "b", "c", "d"}

func (g *txnGen) path() string {
	p := ""
	for d := 0; d <= g.r.IntN(3); d++ {
		p += "/" + genNames[g.r.IntN(len(genNames))]
	}
	return p
}

func (g *txnGen) version() int32 {
	if g.r.IntN(3) == 0 {
		return -1
	}
	return int32(g.r.IntN(3))
}

func (g *txnGen) data() []byte {
	b := make([]byte, g.r.IntN(12))
	for i := range b {
		b[i] = byte(g.r.IntN(256))
	}
	return b
}

func (g *txnGen) simpleOp() Op {
	switch g.r.IntN(10) {
	case 0, 1, 2, 3:
		mode := CreateMode(g.r.IntN(int(PersistentSequentialWithTTL) + 1))
		op := Op{Type: OpCreate, Path: g.path(), Data: g.data(), Mode: mode}
		if mode.IsTTL() {
			op.TTL = int64(1 + g.r.IntN(50))
		}
		return op
	case 4, 5:
		return Op{Type: OpDelete, Path: g.path(), Version: g.version()}
	case 6, 7, 8:
		return Op{Type: OpSetData, Path: g.path(), Data: g.data(), Version: g.version()}
	default:
		return Op{Type: OpCheck, Path: g.path(), Version: g.version()}
	}
}

func (g *txnGen) session() int64 {
	if len(g.sessions) == 0 || g.r.IntN(4) == 0 {
		return 0
	}
	return g.sessions[g.r.IntN(len(g.sessions))]
}

// next returns the next txn; reapable supplies reaper candidates.
func (g *txnGen) next(reapable func(now int64) []string) Txn {
	g.zxid++
	g.now += int64(g.r.IntN(20))
	txn := Txn{Zxid: g.zxid, Time: g.now, Session: g.session()}
	// Some txns carry request ids, a few of them reused (retries).
	if k := g.r.IntN(10); k < 3 {
		txn.ReqID = uint64(1 + g.r.IntN(int(g.zxid)))
	}
	// Some forget ids, remembered or not (Txn.Forget).
	for range g.r.IntN(4) / 2 * (1 + g.r.IntN(3)) {
		txn.Forget = append(txn.Forget, uint64(1+g.r.IntN(int(g.zxid))))
	}
	switch k := g.r.IntN(100); {
	case k < 70:
		txn.Op = g.simpleOp()
	case k < 82:
		ops := make([]Op, 1+g.r.IntN(4))
		for i := range ops {
			ops[i] = g.simpleOp()
		}
		txn.Op = Op{Type: OpMulti, Ops: ops}
	case k < 88:
		id := g.nextSess
		g.nextSess++
		g.sessions = append(g.sessions, id)
		txn.Session = 0
		txn.Op = Op{Type: OpCreateSession, Session: id, Timeout: int32(1000 + g.r.IntN(1000))}
	case k < 92 && len(g.sessions) > 0:
		i := g.r.IntN(len(g.sessions))
		txn.Session = 0
		txn.Op = Op{Type: OpCloseSession, Session: g.sessions[i]}
		g.sessions = append(g.sessions[:i], g.sessions[i+1:]...)
	default:
		p := g.path()
		if c := reapable(g.now); len(c) > 0 && g.r.IntN(2) == 0 {
			p = c[g.r.IntN(len(c))]
		}
		txn.Session = 0
		txn.Op = Op{Type: OpReap, Path: p}
	}
	return txn
}

func describe(txn Txn) string {
	return fmt.Sprintf("zxid=%d session=%d op=%s %s", txn.Zxid, txn.Session, txn.Op.Type, txn.Op.Path)
}
