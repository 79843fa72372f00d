package coord_test

// The README teaches with a program and a configuration table; these tests
// keep both true to the code.

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/tree"
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

	// The one limit the table states in prose.
	m := regexp.MustCompile("(?m)^\\| `MaxDataSize` .*at most (\\d+) MiB").FindStringSubmatch(readme(t))
	if assert.NotNil(t, m, "README.md's MaxDataSize row states its upper bound") {
		assert.Equal(t, fmt.Sprint(tree.MaxDataLimit>>20), m[1], "README.md's MaxDataSize bound in MiB")
	}
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

// kubernetesJoin is the README's Kubernetes example, kept here so that it
// compiles; TestReadmeKubernetes checks the README's copy of its body (all
// but the return).
func kubernetesJoin(namespace string, secretKey []byte) (*coord.Node, error) {
	host, _ := os.Hostname() // orders-0, orders-1, ...
	ordinal, _ := strconv.Atoi(host[strings.LastIndexByte(host, '-')+1:])
	cfg := coord.LANConfig(uint64(ordinal + 1)) // NodeID: the ordinal + 1
	cfg.Voters = []uint64{1, 2, 3}
	if ordinal >= 3 {
		cfg.Role = coord.RoleObserver // pods beyond the third observe; AddVoter promotes one
	}
	for i := range 3 {
		cfg.Seeds = append(cfg.Seeds, fmt.Sprintf("orders-%d.orders-coord.%s.svc.cluster.local:7946", i, namespace))
	}
	cfg.DataDir = "/var/lib/orders/coord" // on the pod's PersistentVolumeClaim (volumeClaimTemplates)
	cfg.SecretKey = secretKey             // 32 bytes from a Secret, the same in every pod
	node, err := coord.Join(cfg)          // gossip binds 0.0.0.0:7946 and advertises the pod IP
	return node, err
}

func TestReadmeKubernetes(t *testing.T) {
	src, err := os.ReadFile("readme_test.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "readme_test.go", src, 0)
	require.NoError(t, err)
	var body string
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Name.Name == "kubernetesJoin" {
			last := fn.Body.List[len(fn.Body.List)-1] // the return
			body = string(src[fset.Position(fn.Body.Lbrace).Offset+2 : fset.Position(last.Pos()).Offset-1])
		}
	}
	require.NotEmpty(t, body)
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		lines = append(lines, strings.TrimPrefix(l, "\t"))
	}
	want := strings.Join(lines, "\n") + "\n"
	for _, b := range goBlocks(readme(t)) {
		if strings.HasPrefix(b, "host, _ := os.Hostname()") {
			require.Equal(t, want, b, "README.md's Kubernetes example differs from kubernetesJoin in readme_test.go")
			return
		}
	}
	t.Fatal("README.md has no Kubernetes example (a ```go block starting with host, _ := os.Hostname())")
}
