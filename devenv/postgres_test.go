package devenv

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// reachableDir returns a temporary directory the postgres OS user can enter,
// unlike t.TempDir, whose directories are private to root.
func reachableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "exportd-devenv-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func pgQuery(t *testing.T, url, sql string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var s string
	require.NoError(t, conn.QueryRow(ctx, sql).Scan(&s))
	return s
}

func pgExec(t *testing.T, url, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err)
}

func TestPostgresRestartKeepsData(t *testing.T) {
	ctx := context.Background()
	pg := &Postgres{Dir: reachableDir(t), NoSync: true, Log: pgTestLogger(t)}
	require.Empty(t, pg.URL())
	require.NoError(t, pg.Start(ctx))
	t.Cleanup(func() { pg.Stop(context.Background()) })
	require.True(t, pg.Running())
	url := pg.URL()
	require.Equal(t, "exportd", pgQuery(t, url, "SELECT current_database()"))
	require.Equal(t, "UTF8", pgQuery(t, url, "SHOW server_encoding"))
	pgExec(t, url, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('yes')")

	require.NoError(t, pg.Stop(ctx))
	require.False(t, pg.Running())
	require.NoError(t, pg.Stop(ctx), "stopping twice is a no-op")
	_, err := pgx.Connect(ctx, url)
	require.Error(t, err)

	require.NoError(t, pg.Start(ctx))
	require.Equal(t, url, pg.URL(), "a restart keeps the port while it is free")
	require.Equal(t, "yes", pgQuery(t, url, "SELECT v FROM kept"))

	// A second value on the same directory, as a second `dev` run would
	// make, finds the cluster and its data.
	require.NoError(t, pg.Stop(ctx))
	again := &Postgres{Dir: pg.Dir, NoSync: true, Log: pgTestLogger(t)}
	require.NoError(t, again.Start(ctx))
	t.Cleanup(func() { again.Stop(context.Background()) })
	require.Equal(t, "yes", pgQuery(t, again.URL(), "SELECT v FROM kept"))
}

func TestPostgresRecoversAfterKill(t *testing.T) {
	ctx := context.Background()
	pg := &Postgres{Dir: reachableDir(t), NoSync: true, Log: pgTestLogger(t)}
	require.NoError(t, pg.Start(ctx))
	t.Cleanup(func() { pg.Stop(context.Background()) })
	pgExec(t, pg.URL(), "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('yes')")

	pg.Kill()
	pidFile := filepath.Join(pg.Dir, "postgres", "postmaster.pid")
	require.FileExists(t, pidFile, "a killed server leaves its pid file")
	// Make the stale file name a live, unrelated process (this one), as
	// happens when PIDs are reused after a reboot; the server alone would
	// refuse to start.
	b, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	_, rest, _ := strings.Cut(string(b), "\n")
	require.NoError(t, os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"+rest), 0o600))

	url := pg.URL()
	require.NoError(t, pg.Start(ctx))
	require.Equal(t, url, pg.URL(), "crash recovery keeps the port too")
	require.Equal(t, "yes", pgQuery(t, pg.URL(), "SELECT v FROM kept"))
}

func TestPostgresMovesOffATakenPort(t *testing.T) {
	ctx := context.Background()
	pg := &Postgres{Dir: reachableDir(t), NoSync: true, Log: pgTestLogger(t)}
	require.NoError(t, pg.Start(ctx))
	t.Cleanup(func() { pg.Stop(context.Background()) })
	pgExec(t, pg.URL(), "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('yes')")
	old := pg.URL()
	require.NoError(t, pg.Stop(ctx))

	u, err := url.Parse(old)
	require.NoError(t, err)
	l, err := net.Listen("tcp", u.Host)
	require.NoError(t, err)
	defer l.Close()
	require.NoError(t, pg.Start(ctx))
	require.NotEqual(t, old, pg.URL())
	require.Equal(t, "yes", pgQuery(t, pg.URL(), "SELECT v FROM kept"))
}

// TestPostgresDiesWithParent kills a process that started a server, as a
// crash or kill -9 of `exportd dev` would, and expects the server to go too.
func TestPostgresDiesWithParent(t *testing.T) {
	dir := reachableDir(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestPostgresHelperProcess$")
	cmd.Env = append(os.Environ(), "EXPORTD_DEVENV_HELPER_DIR="+dir)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var postmaster int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if pid, ok := strings.CutPrefix(sc.Text(), "postmaster "); ok {
			postmaster, err = strconv.Atoi(pid)
			require.NoError(t, err)
			break
		}
	}
	require.NotZero(t, postmaster, "helper did not start a server")
	require.True(t, processAlive(postmaster))
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	require.Eventually(t, func() bool { return !processAlive(postmaster) }, 30*time.Second, 20*time.Millisecond)

	pg := &Postgres{Dir: dir, NoSync: true, Log: pgTestLogger(t)}
	require.NoError(t, pg.Start(context.Background()))
	t.Cleanup(func() { pg.Stop(context.Background()) })
}

// TestPostgresHelperProcess is the process TestPostgresDiesWithParent kills.
func TestPostgresHelperProcess(t *testing.T) {
	dir := os.Getenv("EXPORTD_DEVENV_HELPER_DIR")
	if dir == "" {
		t.Skip("run by TestPostgresDiesWithParent")
	}
	pg := &Postgres{Dir: dir, NoSync: true}
	require.NoError(t, pg.Start(context.Background()))
	fmt.Printf("postmaster %d\n", pg.srv.cmd.Process.Pid)
	select {}
}

func TestPostgresUnreachableDirAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root hands the cluster to another user")
	}
	// t.TempDir's parent is private to root.
	pg := &Postgres{Dir: filepath.Join(t.TempDir(), "data"), Log: pgTestLogger(t)}
	err := pg.Start(context.Background())
	require.ErrorContains(t, err, "postgres OS user")
	require.ErrorContains(t, err, "cannot enter")
}

func TestPostgresStopTimeoutKills(t *testing.T) {
	ctx := context.Background()
	pg := &Postgres{Dir: reachableDir(t), NoSync: true, Log: pgTestLogger(t)}
	require.NoError(t, pg.Start(ctx))
	// A session in a long transaction does not hold up a fast shutdown.
	conn, err := pgx.Connect(ctx, pg.URL())
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "BEGIN")
	require.NoError(t, err)
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, pg.Stop(stopCtx))
}

func TestCompareVersions(t *testing.T) {
	require.Less(t, comparePGVersions("9.6", "15"), 0)
	require.Less(t, comparePGVersions("15", "16"), 0)
	require.Greater(t, comparePGVersions("16.2", "16"), 0)
	require.Zero(t, comparePGVersions("15", "15"))
}

// pgTestLogger sends log lines to the test's output.
func pgTestLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(pgTestWriter{t}, nil))
}

type pgTestWriter struct{ t *testing.T }

func (w pgTestWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
