package wal

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// warnLog captures warnings logged by the package.
type warnLog struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnLog) Enabled(_ context.Context, lvl slog.Level) bool { return lvl >= slog.LevelWarn }
func (w *warnLog) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, r.Message)
	return nil
}
func (w *warnLog) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnLog) WithGroup(string) slog.Handler      { return w }

func (w *warnLog) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs...)
}

// testOpts returns small-segment options and the warning sink.
func testOpts(segSize int64) (Options, *warnLog) {
	w := &warnLog{}
	return Options{SegmentSize: segSize, Logger: slog.New(w)}, w
}

func openLog(t testing.TB, dir string, o Options) *Log {
	t.Helper()
	l, err := Open(dir, o)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

// recs returns records with zxids epoch<<32|1..n and distinct small payloads.
func recs(epoch uint32, from, n int) []Record {
	out := make([]Record, n)
	for i := range out {
		c := from + i
		// Every seventh is a Meta record, so they travel through every test.
		out[i] = Record{Zxid: uint64(epoch)<<32 | uint64(c), Data: []byte(fmt.Sprintf("txn-%d-%d", epoch, c)),
			Meta: c%7 == 0}
	}
	return out
}

func readAll(t testing.TB, l *Log, from uint64) []Record {
	t.Helper()
	var out []Record
	require.NoError(t, l.Iterate(from, func(r Record) error {
		out = append(out, r)
		return nil
	}))
	return out
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "log-*.wal"))
	require.NoError(t, err)
	return m
}

// frameOffsets returns the offset of every record frame in a segment file.
func frameOffsets(t testing.TB, path string) []int64 {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	st, err := f.Stat()
	require.NoError(t, err)
	hdr := make([]byte, segHeaderSize)
	_, err = f.ReadAt(hdr, 0)
	require.NoError(t, err)
	first, ok := parseSegName(filepath.Base(path))
	require.True(t, ok)
	salt, err := checkSegHeader(hdr, first)
	require.NoError(t, err)
	var offs []int64
	s := newScanner(f, segHeaderSize, st.Size(), DefaultMaxRecordSize, salt)
	for {
		off := s.off
		if !s.next() || !s.kind.isRecord() {
			break
		}
		offs = append(offs, off)
	}
	return offs
}

func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	require.NoError(t, os.CopyFS(dst, os.DirFS(src)))
	return dst
}

func slogOf(w *warnLog) *slog.Logger { return slog.New(w) }
