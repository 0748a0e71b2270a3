package workflows_test

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
)

// TestEveryVersionIsRecorded keeps the replay test honest as the
// workflow's shape changes: every workflow.GetVersion change ID in
// workflows/*.go must be listed in testdata/versions.txt, either with a
// recorded history that holds its version marker (so
// TestReplayRecordedHistories replays the new branch) or as "unrecorded"
// with a reason. The file says how to record one.
func TestEveryVersionIsRecorded(t *testing.T) {
	inCode := changeIDs(t)
	require.NotEmpty(t, inCode, "no GetVersion found: has the scan lost track of the workflow code?")
	listed := readVersions(t)
	for id, file := range inCode {
		entry, ok := listed[id]
		require.True(t, ok, "%s calls workflow.GetVersion(%q), which testdata/versions.txt does not list: record a history that takes the new branch "+
			"(see the head of versions.txt) and add the line `%s history_<what>.json`, or `%s unrecorded <reason>` until it is recorded", file, id, id, id)
		if entry.unrecorded {
			continue
		}
		markers := versionMarkers(t, filepath.Join("testdata", entry.history))
		require.Contains(t, markers, id, "testdata/versions.txt names %s as the recording of %q, but it holds no version marker of it (it holds %q)", entry.history, id, markers)
	}
	for id := range listed {
		_, ok := inCode[id]
		require.True(t, ok, "testdata/versions.txt lists %q, which no GetVersion in workflows/*.go uses any more: remove the line", id)
	}
}

type versionEntry struct {
	history    string
	unrecorded bool
}

func readVersions(t *testing.T) map[string]versionEntry {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "versions.txt"))
	require.NoError(t, err)
	defer f.Close()
	out := map[string]versionEntry{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		require.GreaterOrEqual(t, len(fields), 2, "versions.txt:%d: want `<change ID> <history file>` or `<change ID> unrecorded <reason>`", n)
		id := fields[0]
		_, dup := out[id]
		require.False(t, dup, "versions.txt:%d: %q is listed twice", n, id)
		if fields[1] == "unrecorded" {
			require.Greater(t, len(fields), 2, "versions.txt:%d: %q is unrecorded without a reason", n, id)
			out[id] = versionEntry{unrecorded: true}
			continue
		}
		require.Len(t, fields, 2, "versions.txt:%d: a recorded change names one history file", n)
		out[id] = versionEntry{history: fields[1]}
	}
	require.NoError(t, sc.Err())
	return out
}

// changeIDs returns the change IDs passed to workflow.GetVersion in the
// package's non-test files, as string literals or string constants, with
// the file that uses each.
func changeIDs(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	consts := map[string]string{}
	var parsed []*ast.File
	var names []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		parsed, names = append(parsed, f), append(names, name)
		ast.Inspect(f, func(n ast.Node) bool {
			if vs, ok := n.(*ast.ValueSpec); ok {
				for i, v := range vs.Values {
					if s, ok := stringLit(v); ok && i < len(vs.Names) {
						consts[vs.Names[i].Name] = s
					}
				}
			}
			return true
		})
	}
	out := map[string]string{}
	for i, f := range parsed {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) < 2 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "GetVersion" {
				return true
			}
			id, ok := stringLit(call.Args[1])
			if ident, isIdent := call.Args[1].(*ast.Ident); !ok && isIdent {
				id, ok = consts[ident.Name]
			}
			require.True(t, ok, "%s: the change ID of a GetVersion must be a string literal or constant", fset.Position(call.Pos()))
			out[id] = names[i]
			return true
		})
	}
	return out
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// versionMarkers lists the change IDs of the version markers in a
// recorded history.
func versionMarkers(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	require.NoError(t, err)
	var ids []string
	for _, ev := range h.GetEvents() {
		if ev.GetEventType() != enumspb.EVENT_TYPE_MARKER_RECORDED {
			continue
		}
		m := ev.GetMarkerRecordedEventAttributes()
		if m.GetMarkerName() != "Version" {
			continue
		}
		var id string
		if p := m.GetDetails()["change-id"]; p != nil && len(p.GetPayloads()) > 0 {
			if err := converter.GetDefaultDataConverter().FromPayload(p.GetPayloads()[0], &id); err == nil && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	return ids
}
