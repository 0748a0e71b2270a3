package clover

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
)

// The goldens in testdata are the documents of Clover's Export API docs
// (docs.clover.com/docs/exporting-merchant-data and the README of
// github.com/clover/export-api-examples), with the placeholders there
// (export_id, start_time, URL...) replaced by values of the right JSON
// type. Tests compare structure: the same keys in the same order, the same
// JSON types, and equal values except for the volatile fields below.

// volatile are the fields whose values differ from run to run; the goldens
// pin their presence and type only.
var volatile = map[string]bool{
	"id": true, "startTime": true, "endTime": true, "createdTime": true, "modifiedTime": true,
	"availableUntil": true, "url": true,
}

// Golden reads testdata/name.
func Golden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

// RequireShape fails t unless the JSON document got has the structure of
// the golden want: keys, key order, types and stable values.
func RequireShape(t testing.TB, want, got []byte) {
	t.Helper()
	require.Equal(t, shapeOf(t, want), shapeOf(t, got), "got %s", got)
	require.Equal(t, KeyOrder(t, want), KeyOrder(t, got), "key order, which position-sensitive clients rely on")
}

func shapeOf(t testing.TB, data []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	require.NoError(t, dec.Decode(&v), "%s", data)
	return shape(t, v, "")
}

// shape replaces volatile values by their JSON type and requires the
// elements of an array to share one shape, which stands for all of them.
func shape(t testing.TB, v any, key string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = shape(t, e, k)
		}
		return out
	case []any:
		if len(x) == 0 {
			return []any{}
		}
		first := shape(t, x[0], key)
		for i := range x[1:] {
			require.True(t, reflect.DeepEqual(first, shape(t, x[i+1], key)), "element %d of %q differs in shape from the first", i+1, key)
		}
		return []any{first}
	case json.Number:
		if volatile[key] {
			return "<number>"
		}
	case string:
		if volatile[key] {
			return "<string>"
		}
	}
	return v
}

// KeyOrder returns the keys of a JSON object in document order.
func KeyOrder(t testing.TB, data []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	require.NoError(t, err)
	require.Equal(t, json.Delim('{'), tok)
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		require.NoError(t, err)
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		require.NoError(t, dec.Decode(&skip))
	}
	return keys
}
