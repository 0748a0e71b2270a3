package doshii

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func readJSON(t *testing.T, name string) any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	var v any
	require.NoError(t, json.Unmarshal(b, &v), name)
	return v
}

func toJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var out any
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

// golden compares v with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, v any) {
	t.Helper()
	if *update {
		b, err := json.MarshalIndent(v, "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join("testdata", name), append(b, '\n'), 0o644))
	}
	require.Equal(t, readJSON(t, name), toJSON(t, v), "testdata/%s (run with -update to rewrite)", name)
}

// sameShape requires got to have exactly the keys of want at every level,
// with values of the same JSON types, as a client written from want reads
// them.
func sameShape(t *testing.T, want, got any, path string) {
	t.Helper()
	require.Equal(t, reflect.TypeOf(want), reflect.TypeOf(got), "type at %s", path)
	switch w := want.(type) {
	case map[string]any:
		g := got.(map[string]any)
		require.Equal(t, sortedKeys(w), sortedKeys(g), "keys at %s", path)
		for k := range w {
			sameShape(t, w[k], g[k], path+"."+k)
		}
	case []any:
		g := got.([]any)
		require.Len(t, g, len(w), "length at %s", path)
		for i := range w {
			sameShape(t, w[i], g[i], path+"[]")
		}
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func unix(s int64) *time.Time {
	t := time.Unix(s, 0).UTC()
	return &t
}

// exampleState is the export behind Doshii's webhook example: the same
// id, times, file and tally.
func exampleState() (exportd.State, exportd.Manifest) {
	tally := exportd.Tally{Locations: 1, Orders: 100, Transactions: 105, Amount: 1200}
	st := exportd.State{
		Spec:  exportd.Spec{ExportID: "e1182944-3b97-4ac3-9839-d1a7b56c2c79", MerchantID: "m1", Dataset: exportd.Orders, Formats: []exportd.Format{exportd.DoshiiJSON}},
		Phase: exportd.PhaseReady, CreatedAt: *unix(1539665129), CompletedAt: unix(1539665329),
		AvailableUntil: unix(1542933823), Tally: &tally,
	}
	m := exportd.Manifest{ExportID: st.Spec.ExportID, Tally: tally, Files: []exportd.FileInfo{
		// 10242048 bytes would be 10002 KB exactly; a few bytes less
		// still rounds up to it.
		{Name: "fileName.json.gzip", Format: exportd.DoshiiJSON, Rows: 100, Bytes: 10002*1024 - 500},
	}}
	return st, m
}

func TestStatusDocumentMatchesDoshiiExample(t *testing.T) {
	st, m := exampleState()
	doc := StatusDocument(st, &m, "https://exportd.example")
	golden(t, "status_complete.json", doc)

	// Against the example on Doshii's "Bulk Data Webhook Request" page:
	// the same fields of the same types and the same values, but for the
	// file URI, which is ours and absolute.
	want := readJSON(t, "doshii_webhook_example.json")
	got := toJSON(t, doc)
	sameShape(t, want, got, "$")
	file := got.(map[string]any)["files"].([]any)[0].(map[string]any)
	require.Equal(t, "https://exportd.example/partner/v3/data/orders/e1182944-3b97-4ac3-9839-d1a7b56c2c79/files/fileName.json.gzip", file["uri"])
	file["uri"] = want.(map[string]any)["files"].([]any)[0].(map[string]any)["uri"]
	require.Equal(t, want, got)
}

func TestCreateResponseMatchesDoshiiExample(t *testing.T) {
	st, _ := exampleState()
	st.Phase, st.CreatedAt, st.CompletedAt = exportd.PhaseQueued, *unix(1542628078), nil
	doc := StatusDocument(st, nil, "https://exportd.example")
	require.Equal(t, readJSON(t, "doshii_create_response_example.json"), toJSON(t, doc))
}

func TestStatusDocuments(t *testing.T) {
	st, m := exampleState()
	for _, tc := range []struct {
		phase exportd.Phase
		want  string
	}{
		{exportd.PhaseQueued, `{"requestId":"e1182944-3b97-4ac3-9839-d1a7b56c2c79","requestCreatedAt":1539665129,"status":"pending"}`},
		{exportd.PhaseExporting, `{"requestId":"e1182944-3b97-4ac3-9839-d1a7b56c2c79","requestCreatedAt":1539665129,"status":"processing"}`},
		{exportd.PhaseCanceled, `{"requestId":"e1182944-3b97-4ac3-9839-d1a7b56c2c79","requestCreatedAt":1539665129,"status":"aborted"}`},
		{exportd.PhaseFailed, `{"requestId":"e1182944-3b97-4ac3-9839-d1a7b56c2c79","requestCreatedAt":1539665129,"status":"failed",` +
			`"error":{"message":"the source database is unreachable","errorCode":"source_error"}}`},
		// Expired: still complete, with no files left to list.
		{exportd.PhaseExpired, `{"requestId":"e1182944-3b97-4ac3-9839-d1a7b56c2c79","requestCreatedAt":1539665129,"status":"complete",` +
			`"requestCompletedAt":1539665329,"files":[],"tally":{"locations":1,"orders":100,"transactions":105,"amount":1200}}`},
	} {
		t.Run(string(tc.phase), func(t *testing.T) {
			s := st
			s.Phase = tc.phase
			if tc.phase == exportd.PhaseFailed {
				s.Error = &exportd.Failure{Code: exportd.CodeSourceError, Message: "the source database is unreachable"}
			}
			b, err := json.Marshal(StatusDocument(s, &m, "https://exportd.example"))
			require.NoError(t, err)
			require.JSONEq(t, tc.want, string(b))
		})
	}
}

func TestFileSizeRoundsUp(t *testing.T) {
	st, m := exampleState()
	m.Files[0].Bytes = 23 // an empty array, gzipped
	require.Equal(t, int64(1), StatusDocument(st, &m, "").Files[0].Size)
}
