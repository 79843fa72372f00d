package wal

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendFrame(nil, 7, 1<<32|1, []byte("hello"), false), uint32(64), uint32(7))
	f.Add(appendFrame(nil, 0, 5, nil, false), uint32(0), uint32(0))
	f.Add(appendSeal(nil, 0xdeadbeef, 9), uint32(64), uint32(0xdeadbeef))
	f.Add(make([]byte, 16), uint32(64), uint32(1))
	f.Add(appendFrame(nil, 1, 5, []byte("too long for the limit"), false), uint32(4), uint32(1))
	f.Add(appendFrame(nil, 1, 5, []byte("abc"), false)[:10], uint32(64), uint32(1))
	f.Add(appendFrame(nil, 1, 5, []byte("other salt"), false), uint32(64), uint32(2))
	f.Add(appendFrame(nil, 3, 9, []byte{1, 2, 3}, true), uint32(64), uint32(3))
	f.Fuzz(func(t *testing.T, b []byte, maxData, salt uint32) {
		kind, zxid, data, n, err := decodeFrame(b, maxData, salt)
		if err != nil {
			return
		}
		switch kind {
		case frameEnd:
			if !bytes.Equal(b[:frameHeaderSize], make([]byte, frameHeaderSize)) {
				t.Fatalf("end of data on a non-zero header %x", b[:frameHeaderSize])
			}
		case frameRecord, frameMeta:
			if zxid == 0 || uint32(len(data)) > maxData || n > len(b) {
				t.Fatalf("accepted invalid record zxid=%d len=%d n=%d", zxid, len(data), n)
			}
			if enc := appendFrame(nil, salt, zxid, data, kind == frameMeta); !bytes.Equal(enc, b[:n]) {
				t.Fatalf("re-encoding differs: %x vs %x", enc, b[:n])
			}
		case frameSeal:
			if enc := appendSeal(nil, salt, zxid); !bytes.Equal(enc, b[:n]) {
				t.Fatalf("re-encoding seal differs: %x vs %x", enc, b[:n])
			}
		}
	})
}

func FuzzOpenSnapshot(f *testing.F) {
	var buf bytes.Buffer
	_, err := writeSnapshot(&buf, 42, func(w io.Writer) error { _, err := w.Write([]byte("payload")); return err })
	require.NoError(f, err)
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:20])
	f.Add([]byte{})
	f.Add(make([]byte, 32))
	f.Fuzz(func(t *testing.T, b []byte) {
		payload, zxid, err := verifySnapshot(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		var out bytes.Buffer
		_, err = writeSnapshot(&out, zxid, func(w io.Writer) error {
			_, err := w.Write(b[snapHeaderSize : snapHeaderSize+payload])
			return err
		})
		require.NoError(t, err)
		if !bytes.Equal(out.Bytes(), b) {
			t.Fatalf("accepted a snapshot that does not re-encode to itself")
		}
	})
}

// FuzzOpenLog recovers a segment whose body is arbitrary bytes: Open either
// fails with ErrCorrupt or returns a log whose records are strictly
// increasing, and whose repair is durable (a second Open warns about nothing
// and yields the same records).
func FuzzOpenLog(f *testing.F) {
	const salt = 0x5a17
	seed := encodeSegHeader(1, salt)
	for _, r := range []Record{{1, []byte("a"), false}, {2, []byte("bb"), true}, {3, nil, false}} {
		seed = appendFrame(seed, salt, r.Zxid, r.Data, r.Meta)
	}
	f.Add(seed[segHeaderSize:])
	f.Add(seed[segHeaderSize : len(seed)-5])
	f.Add(appendSeal(seed[segHeaderSize:], salt, 4))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > 4096 {
			return
		}
		dir := t.TempDir()
		file := append(encodeSegHeader(1, salt), body...)
		file = append(file, make([]byte, 64)...) // preallocated zeros
		require.NoError(t, os.WriteFile(filepath.Join(dir, segName(1)), file, 0o644))
		o := Options{SegmentSize: 8192}
		l, err := Open(dir, o)
		if err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			return
		}
		var got []Record
		require.NoError(t, l.Iterate(0, func(r Record) error { got = append(got, r); return nil }))
		for i := 1; i < len(got); i++ {
			require.Greater(t, got[i].Zxid, got[i-1].Zxid)
		}
		require.NoError(t, l.Close())
		o2, w := testOpts(8192)
		l2, err := Open(dir, o2)
		require.NoError(t, err)
		defer l2.Close()
		var again []Record
		require.NoError(t, l2.Iterate(0, func(r Record) error { again = append(again, r); return nil }))
		require.Equal(t, got, again)
		require.Empty(t, w.all())
	})
}
