package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadmeListsEveryVariable keeps the README's configuration table
// honest: every EXPORTD_* variable that a service subcommand reads must
// appear in it.
func TestReadmeListsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	envName := regexp.MustCompile(`EXPORTD_[A-Z0-9_]+`)
	for _, cmd := range []string{"dev", "cluster", "worker", "api", "migrate", "seed"} {
		var out bytes.Buffer
		code := run(context.Background(), []string{cmd, "--help"}, func(string) string { return "" }, &out, &out)
		require.Equal(t, 0, code, "%s --help", cmd)
		names := envName.FindAllString(out.String(), -1)
		require.NotEmpty(t, names, "%s --help lists no variables", cmd)
		for _, n := range names {
			require.Contains(t, string(readme), "`"+n+"`", "README's configuration table misses %s (read by exportd %s)", n, cmd)
		}
	}
}
