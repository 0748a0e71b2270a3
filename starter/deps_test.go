package starter_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStarterStaysLight keeps the Go client light: a service that only
// starts and follows exports must not link the engine's file formats, the
// PostgreSQL driver or Prometheus. What crosses the Temporal boundary
// lives in package contract for that reason.
func TestStarterStaysLight(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/exportd/exportd/starter").CombinedOutput()
	require.NoError(t, err, "go list: %s", out)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/exportd/exportd/contract")
	for _, dep := range deps {
		for _, heavy := range []string{"github.com/parquet-go/", "github.com/apache/arrow-go/", "github.com/jackc/pgx/", "github.com/prometheus/"} {
			require.False(t, strings.HasPrefix(dep, heavy), "starter depends on %s; keep what it needs in package contract", dep)
		}
	}
}
