package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDemo runs what `make demo` runs, `exportd dev --demo`, and checks
// that it gets to its end: the window export matches SQL, and the change
// export after the backfill holds exactly the edits the demo made.
func TestDemo(t *testing.T) {
	s := startDev(t, "--demo", "--seed-orders", "800")
	log := filepath.Join(s.dataDir, "exportd-dev.log")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, err := os.ReadFile(log)
		require.NoError(t, err)
		out := string(b)
		if strings.Contains(out, "running; press Ctrl-C to stop") {
			for _, want := range []string{
				"the export matches SQL",
				"a change export without a cursor is the backfill",
				"800 upserts, 0 deletes",
				"4 upserts, 1 deletes",
				"the change export holds exactly what changed since the backfill's cursor",
			} {
				require.Contains(t, out, want)
			}
			return
		}
		require.NotContains(t, out, "exportd dev: demo export:", "the demo failed")
		require.True(t, time.Now().Before(deadline), "the demo did not finish within 2 minutes:\n%s", tail(b, 4000))
		time.Sleep(200 * time.Millisecond)
	}
}
