package coord_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
)

// The public API hands out no internals (issue 10, item 10): options are
// opaque, a Watch cannot be fed events, session states are coord's own
// type and every zxid is an int64.

func TestCreateOptionIsOpaque(t *testing.T) {
	typ := reflect.TypeFor[coord.CreateOption]()
	require.Equal(t, reflect.Struct, typ.Kind(), "a func option could rewrite the whole op")
	for f := range typ.Fields() {
		assert.False(t, f.IsExported(), "CreateOption field %s is settable by callers", f.Name)
	}
}

func TestWatchCannotBeFedEvents(t *testing.T) {
	var names []string
	for m := range reflect.TypeFor[*coord.Watch]().Methods() {
		names = append(names, m.Name)
	}
	require.Equal(t, []string{"C", "Close"}, names)
	for f := range reflect.TypeFor[coord.Watch]().Fields() {
		assert.False(t, f.IsExported(), "Watch field %s", f.Name)
	}
}

func TestSessionStateIsCoords(t *testing.T) {
	m, ok := reflect.TypeFor[*coord.Session]().MethodByName("State")
	require.True(t, ok)
	out := m.Type.Out(0)
	require.Equal(t, "SessionState", out.Name())
	require.Equal(t, reflect.TypeFor[coord.Node]().PkgPath(), out.PkgPath())

	node, stop := startOne()
	defer stop()
	s, err := node.Session(t.Context(), coord.SessionOptions{})
	require.NoError(t, err)
	require.Equal(t, coord.SessionStateConnected, s.State())
	require.Equal(t, "Connected", s.State().String())
	require.NoError(t, s.Close(t.Context()))
}

// TestZxidsAreInt64 walks the public result types: a field that holds a
// zxid has one type everywhere.
func TestZxidsAreInt64(t *testing.T) {
	for _, typ := range []reflect.Type{
		reflect.TypeFor[coord.Stat](), reflect.TypeFor[coord.Event](),
		reflect.TypeFor[coord.Stats](), reflect.TypeFor[coord.FollowerStats](),
	} {
		for f := range typ.Fields() {
			name := strings.ToLower(f.Name)
			if strings.Contains(name, "zxid") || name == "committed" || name == "applied" || name == "acked" {
				assert.Equal(t, reflect.Int64, f.Type.Kind(), "%s.%s", typ.Name(), f.Name)
			}
		}
	}
}
