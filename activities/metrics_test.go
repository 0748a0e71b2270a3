package activities_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/activities"
	"github.com/exportd/exportd/metrics"
)

// counter reads one sample of a metric family from the registry.
func counter(t *testing.T, reg *metrics.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := reg.Gatherer().Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, labels) {
				if h := m.GetHistogram(); h != nil {
					return float64(h.GetSampleCount())
				}
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return len(got) == len(want)
}

// TestExportMetricsMatchManifest checks that the rows and bytes counted
// per format are the manifest's, and that the attempt is logged with the
// export's ids.
func TestExportMetricsMatchManifest(t *testing.T) {
	pool := seededPool(t)
	f := newFixture(t, pool)
	reg := metrics.New(nil)
	var logs bytes.Buffer
	f.acts.Metrics = reg
	f.acts.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	s := spec("metrics1", exportd.Orders, seedStart, seedEnd, 700, exportd.Formats...)
	out, _ := f.run(t, s)

	obj, err := f.store.Open(context.Background(), "metrics1/"+exportd.ManifestName)
	require.NoError(t, err)
	defer obj.Close()
	var m exportd.Manifest
	require.NoError(t, json.NewDecoder(obj).Decode(&m))
	rows, size := map[exportd.Format]int64{}, map[exportd.Format]int64{}
	for _, fi := range m.Files {
		rows[fi.Format] += fi.Rows
		size[fi.Format] += fi.Bytes
	}
	require.Len(t, rows, len(exportd.Formats))
	for _, format := range exportd.Formats {
		l := map[string]string{"dataset": "orders", "format": string(format)}
		require.Equal(t, float64(m.Rows), counter(t, reg, "exportd_rows_written_total", l), format)
		require.Equal(t, float64(rows[format]), counter(t, reg, "exportd_rows_written_total", l), format)
		require.Equal(t, float64(size[format]), counter(t, reg, "exportd_bytes_written_total", l), format)
	}
	parts := len(out.Files) / len(exportd.Formats)
	require.Equal(t, float64(parts), counter(t, reg, "exportd_export_parts_committed_total", map[string]string{"dataset": "orders"}))
	require.Equal(t, 1.0, counter(t, reg, "exportd_export_duration_seconds", map[string]string{"dataset": "orders", "outcome": "succeeded"}))

	var finished map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(logs.Bytes()), []byte("\n")) {
		var rec map[string]any
		require.NoError(t, json.Unmarshal(line, &rec))
		if rec["msg"] == "export attempt finished" {
			finished = rec
		}
	}
	require.NotNil(t, finished, "logs:\n%s", logs.String())
	require.Equal(t, "metrics1", finished["export_id"])
	require.Equal(t, merchant, finished["merchant"])
	require.Equal(t, "Export", finished["activity"])
	require.Contains(t, finished, "workflow_id")
	require.Equal(t, float64(m.Rows), finished["rows"])
}

func TestExportMetricsCountFailedAttempts(t *testing.T) {
	pool := seededPool(t)
	f := newFixture(t, pool)
	reg := metrics.New(nil)
	f.acts.Metrics = reg
	f.acts.Source = &failingSource{Source: f.acts.Source, pages: 3}
	s := spec("metrics2", exportd.Orders, seedStart, seedEnd, 100, exportd.CSV)
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	_, err := env.ExecuteActivity(f.acts.Export, activities.ExportInput{Spec: s, Total: 2500})
	require.ErrorContains(t, err, errCrash.Error())
	require.Equal(t, 1.0, counter(t, reg, "exportd_export_duration_seconds", map[string]string{"dataset": "orders", "outcome": "failed"}))
	// 3 pages of 97 rows: two parts of 100 committed before the crash.
	require.Equal(t, 200.0, counter(t, reg, "exportd_rows_written_total", map[string]string{"dataset": "orders", "format": "csv.gz"}))
}
