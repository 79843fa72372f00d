package coord_test

// The README teaches with a program and a configuration table; these tests
// keep both true to the code.

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
)

// readmeProgram is the file whose copy the README shows in full.
const readmeProgram = "examples/hello/main.go"

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	require.NoError(t, err)
	return string(b)
}

// goBlocks returns the README's ```go code blocks, in order.
func goBlocks(md string) []string {
	var blocks []string
	for _, part := range strings.Split(md, "```go\n")[1:] {
		end := strings.Index(part, "```")
		if end < 0 {
			break
		}
		blocks = append(blocks, part[:end])
	}
	return blocks
}

// TestReadmeProgram checks that the README quotes examples/hello/main.go
// exactly (the examples test builds and runs that file as 3 processes).
func TestReadmeProgram(t *testing.T) {
	want, err := os.ReadFile(readmeProgram)
	require.NoError(t, err)
	for _, b := range goBlocks(readme(t)) {
		if strings.HasPrefix(b, "// Command hello") {
			require.Equal(t, string(want), b, "README.md's copy of %s differs from the file: paste the file into the README", readmeProgram)
			return
		}
	}
	t.Fatalf("README.md has no ```go block quoting %s", readmeProgram)
}

// TestReadmeCommands checks the two set-up commands a newcomer is given.
func TestReadmeCommands(t *testing.T) {
	md := readme(t)
	i := strings.Index(md, "## Two commands")
	require.GreaterOrEqual(t, i, 0, "README.md lost its 'Two commands' section")
	block := md[i:]
	block = block[strings.Index(block, "```sh\n")+len("```sh\n"):]
	block = block[:strings.Index(block, "```")]
	var cmds []string
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		cmds = append(cmds, strings.TrimSpace(strings.SplitN(line, "#", 2)[0]))
	}
	assert.Equal(t, []string{"go run ./examples/quickstart", "go test -race ./..."}, cmds)
}

var configRow = regexp.MustCompile("(?m)^\\| `([A-Za-z]+)` \\| `([^`]*)` \\| `([^`]*)` \\| (.+) \\|$")

// TestReadmeConfigTable checks that the README's configuration reference
// lists every Config field once, with LANConfig's and LocalConfig's values.
func TestReadmeConfigTable(t *testing.T) {
	type row struct{ lan, local string }
	rows := map[string]row{}
	var order []string
	for _, m := range configRow.FindAllStringSubmatch(readme(t), -1) {
		_, dup := rows[m[1]]
		assert.False(t, dup, "README.md lists Config.%s twice", m[1])
		rows[m[1]] = row{m[2], m[3]}
		order = append(order, m[1])
	}
	const id = 7
	lan, local := reflect.ValueOf(coord.LANConfig(id)), reflect.ValueOf(coord.LocalConfig(id))
	typ := lan.Type()
	var fields []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		fields = append(fields, f.Name)
		r, ok := rows[f.Name]
		if !assert.True(t, ok, "README.md's configuration table has no row for Config.%s", f.Name) {
			continue
		}
		assert.Equal(t, presetValue(t, f.Name, lan.Field(i)), r.lan, "Config.%s: README's LANConfig column", f.Name)
		assert.Equal(t, presetValue(t, f.Name, local.Field(i)), r.local, "Config.%s: README's LocalConfig column", f.Name)
	}
	assert.Equal(t, fields, order, "README.md's configuration table: one row per Config field, in declaration order")
}

// presetValue renders a preset's field as the README's table shows it.
func presetValue(t *testing.T, name string, v reflect.Value) string {
	if name == "NodeID" {
		require.EqualValues(t, 7, v.Uint(), "the presets set NodeID to their argument")
		return "id"
	}
	switch x := v.Interface().(type) {
	case time.Duration:
		return x.String()
	case string:
		if x == "" {
			return `""`
		}
		return x
	case fmt.Stringer:
		return x.String()
	}
	switch v.Kind() {
	case reflect.Slice, reflect.Pointer, reflect.Map, reflect.Func:
		if v.IsNil() {
			return "nil"
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return fmt.Sprint(v.Int())
	}
	t.Fatalf("Config.%s: no README rendering for %v (%s)", name, v.Interface(), v.Type())
	return ""
}
