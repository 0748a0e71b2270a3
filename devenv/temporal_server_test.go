package devenv

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The server keeps membership ports in a smallint column: a port from the
// kernel's ephemeral range (32768 and up) makes it exit at start.
func TestLowFreePorts(t *testing.T) {
	ports, err := lowFreePorts([]int{0, 0, 0, 40000, 0})
	require.NoError(t, err)
	seen := map[int]bool{}
	for _, p := range ports {
		require.Less(t, p, 32768)
		require.GreaterOrEqual(t, p, 10000)
		require.False(t, seen[p], "port %d handed out twice", p)
		seen[p] = true
	}
	again, err := lowFreePorts([]int{ports[0]})
	require.NoError(t, err)
	require.Equal(t, ports[0], again[0], "a free preferred port is kept")
}

func TestTemporalServerMissingBinary(t *testing.T) {
	dir := t.TempDir()
	s := &TemporalServer{Bin: filepath.Join(dir, "no-such-server"), DataDir: dir}
	require.ErrorContains(t, s.Start(context.Background()), "make cluster-tools")
	require.NoError(t, s.Stop())
}

func TestProcessStopKillsAfterTimeout(t *testing.T) {
	dir := t.TempDir()
	p := &Process{Name: "stubborn", Path: "/bin/sh", Args: []string{"-c", "trap '' TERM; echo trapped; sleep 60 & wait"},
		LogPath: filepath.Join(dir, "log")}
	require.NoError(t, p.Start())
	require.NotZero(t, p.Pid())
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(p.LogPath)
		return strings.Contains(string(b), "trapped")
	}, 10*time.Second, 10*time.Millisecond)
	began := time.Now()
	require.ErrorContains(t, p.Stop(300*time.Millisecond), "killed it")
	require.True(t, p.Exited())
	require.Less(t, time.Since(began), 10*time.Second)
	require.NoError(t, p.Stop(time.Second), "stopping a stopped process")
}
