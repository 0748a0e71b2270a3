package devenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a private PostgreSQL cluster in a data directory, run as a
// child process on a loopback port. The zero value plus Dir is ready to use;
// Start and Stop may alternate any number of times and the data persists.
type Postgres struct {
	// Dir holds the cluster (Dir/postgres) and its server log
	// (Dir/postgres.log). It is created if missing.
	Dir string
	// Database is the application database Start creates when missing;
	// "exportd" when empty.
	Database string
	// Port is the TCP port to listen on; 0 picks a free one at the first
	// Start and keeps it across restarts while it stays free, so pools
	// holding the URL reconnect after a restart.
	Port int
	// NoSync turns fsync off in initdb and the server: much faster, but a
	// machine crash can corrupt the cluster, so it is for tests only.
	// Commits still reach the kernel, so killing the server loses nothing.
	NoSync bool
	// Settings are extra server settings, passed as -c name=value.
	Settings map[string]string
	// StartTimeout bounds the wait for the server to accept connections,
	// which includes crash recovery after a kill; 2 minutes when zero.
	StartTimeout time.Duration
	// Log receives progress messages; nil discards them.
	Log *slog.Logger

	mu   sync.Mutex
	srv  *pgServer // the running server, nil when stopped
	port int       // the port of the last start
}

// pgServer is one run of the postgres binary.
type pgServer struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // the result of Wait, set before done is closed
}

const defaultPostgresStartTimeout = 2 * time.Minute

// Start initialises the cluster if needed, starts the server and waits until
// the application database accepts connections. It is a no-op when the
// server is already running.
func (p *Postgres) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv != nil {
		return nil
	}
	if p.Dir == "" {
		return errors.New("no data directory given")
	}
	dir, err := filepath.Abs(p.Dir)
	if err != nil {
		return fmt.Errorf("error resolving data directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("error creating data directory: %w", err)
	}
	cred, err := clusterCredential()
	if err != nil {
		return err
	}
	if cred != nil {
		if err := checkReachableBy(dir, cred); err != nil {
			return err
		}
	}
	pgdata := filepath.Join(dir, "postgres")
	bins, err := findPGBinaries(pgdata)
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("error opening server log: %w", err)
	}
	// The children hold their own copy of the descriptor.
	defer logFile.Close()

	if err := p.initdb(ctx, bins, dir, pgdata, cred, logFile); err != nil {
		return err
	}
	if err := p.clearStalePID(pgdata); err != nil {
		return err
	}

	timeout := p.StartTimeout
	if timeout <= 0 {
		timeout = defaultPostgresStartTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// A port that was free when probed can be taken before the server binds
	// it; such a start fails fast and is retried on another port.
	newPort := false
	for portTries, shmTries := 0, 0; ; {
		port, err := p.choosePort(newPort)
		if err != nil {
			return err
		}
		logStart, _ := logFile.Seek(0, io.SeekEnd)
		srv, err := launchPostgres(bins.postgres, p.serverArgs(pgdata, port), dir, cred, logFile)
		if err != nil {
			return fmt.Errorf("error starting server: %w", err)
		}
		err = waitPostgres(ctx, srv, p.urlFor(port, "postgres"))
		if err == nil {
			p.srv, p.port = srv, port
			break
		}
		srv.kill()
		logTail := readLogSince(logFile.Name(), logStart)
		if portTries++; portTries < 5 && bytes.Contains(logTail, []byte("could not bind")) {
			p.log().Warn("postgres port taken, retrying on another", "port", port)
			newPort = true
			continue
		}
		// Backends of a server that was killed outright exit on their own
		// shortly after noticing, releasing its shared memory.
		if shmTries++; shmTries < 20 && bytes.Contains(logTail, []byte("pre-existing shared memory block")) {
			p.log().Warn("backends of an earlier server still running, waiting for them to exit")
			if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
				return fmt.Errorf("server did not come up: %w\n%s", err, logTail)
			}
			continue
		}
		return fmt.Errorf("server did not come up: %w\n%s", err, logTail)
	}

	if err := p.createDatabase(ctx); err != nil {
		p.srv.kill()
		p.srv = nil
		return err
	}
	p.log().Info("postgres ready", "url", p.urlFor(p.port, p.database()), "dir", pgdata, "log", logFile.Name())
	return nil
}

// Stop shuts the server down (fast shutdown: sessions are cut, a checkpoint
// is written) and waits for it to exit. When ctx ends first, the server is
// killed instead. Stop is a no-op when the server is not running.
func (p *Postgres) Stop(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	srv := p.srv
	if srv == nil {
		return nil
	}
	p.srv = nil
	if err := srv.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("error signalling server: %w", err)
	}
	select {
	case <-srv.done:
		p.log().Info("postgres stopped", "dir", p.Dir)
		return nil
	case <-ctx.Done():
		srv.kill()
		return fmt.Errorf("error waiting for shutdown, killed it: %w", ctx.Err())
	}
}

// Kill ends the server and all its backends at once, as a crash would, so
// tests can exercise recovery. The next Start runs crash recovery.
func (p *Postgres) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv != nil {
		p.srv.kill()
		p.srv = nil
	}
}

// Running reports whether the server started by Start is still alive.
func (p *Postgres) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv == nil {
		return false
	}
	select {
	case <-p.srv.done:
		return false
	default:
		return true
	}
}

// URL returns the connection URL of the application database. It is empty
// before the first Start and stays valid across restarts on the same port.
func (p *Postgres) URL() string { return p.DatabaseURL(p.database()) }

// DatabaseURL returns the connection URL of another database of the cluster,
// such as "postgres" for administration.
func (p *Postgres) DatabaseURL(name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.port == 0 {
		return ""
	}
	return p.urlFor(p.port, name)
}

func (p *Postgres) urlFor(port int, db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", port, db)
}

func (p *Postgres) database() string {
	if p.Database == "" {
		return "exportd"
	}
	return p.Database
}

func (p *Postgres) log() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}

// initdb creates the cluster unless it exists. It works in a scratch
// directory renamed into place at the end, so an interrupted initdb never
// leaves a half-made cluster behind that later starts would trip on.
func (p *Postgres) initdb(ctx context.Context, bins pgBinaries, dir, pgdata string, cred *syscall.Credential, logFile *os.File) error {
	if _, err := os.Stat(filepath.Join(pgdata, "PG_VERSION")); err == nil {
		return chownCluster(pgdata, cred)
	}
	tmp := pgdata + ".initdb"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("error clearing old initdb attempt: %w", err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("error creating cluster directory: %w", err)
	}
	if err := chownCluster(tmp, cred); err != nil {
		return err
	}
	args := []string{"-D", tmp, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"}
	if p.NoSync {
		args = append(args, "--no-sync")
	}
	p.log().Info("initialising postgres cluster", "dir", pgdata, "initdb", bins.initdb)
	logStart, _ := logFile.Seek(0, io.SeekEnd)
	cmd := exec.CommandContext(ctx, bins.initdb, args...)
	// initdb resolves its working directory, which must be reachable by the
	// postgres user when running as root.
	cmd.Dir = dir
	cmd.Env = postgresEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("error running initdb: %w\n%s", err, readLogSince(logFile.Name(), logStart))
	}
	if err := os.Rename(tmp, pgdata); err != nil {
		return fmt.Errorf("error moving new cluster into place: %w", err)
	}
	return nil
}

func (p *Postgres) serverArgs(pgdata string, port int) []string {
	args := []string{"-D", pgdata, "-p", strconv.Itoa(port), "-c", "listen_addresses=127.0.0.1"}
	// The socket lives in the cluster so the server never needs the system
	// socket directory (/var/run/postgresql), which may be missing or
	// owned by another cluster. Paths over the kernel's limit for socket
	// names disable the socket: clients here use TCP anyway.
	sock := pgdata
	if len(filepath.Join(sock, ".s.PGSQL.65535")) >= 107 {
		sock = ""
	}
	args = append(args, "-c", "unix_socket_directories="+sock)
	if p.NoSync {
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off")
	}
	keys := make([]string, 0, len(p.Settings))
	for k := range p.Settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+p.Settings[k])
	}
	return args
}

// choosePort keeps the configured or previous port while it is free, so
// clients holding the URL reconnect after a restart, and otherwise takes a
// free one; fresh asks for another port than last time.
func (p *Postgres) choosePort(fresh bool) (int, error) {
	if p.Port != 0 {
		if fresh {
			return 0, fmt.Errorf("port %d is taken", p.Port)
		}
		return p.Port, nil
	}
	prefer := p.port
	if fresh {
		prefer = 0
	}
	ports, err := FreePorts([]int{prefer})
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// createDatabase makes the application database on first start.
func (p *Postgres) createDatabase(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, p.urlFor(p.port, "postgres"))
	if err != nil {
		return fmt.Errorf("error connecting to create database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", p.database()).Scan(&exists); err != nil {
		return fmt.Errorf("error checking for database: %w", err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{p.database()}.Sanitize()); err != nil {
		return fmt.Errorf("error creating database: %w", err)
	}
	p.log().Info("created database", "name", p.database())
	return nil
}

// launchPostgres starts the server so that it dies with this process. Pdeathsig
// fires when the thread that forked the child exits, not the process, so
// the fork happens on a goroutine locked to its thread for the child's whole
// life; the Go runtime never retires a locked thread under it.
func launchPostgres(bin string, args []string, dir string, cred *syscall.Credential, logFile *os.File) (*pgServer, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = postgresEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// SIGINT is PostgreSQL's fast shutdown: clean, and quick.
	cmd.SysProcAttr = ChildProcAttr(syscall.SIGINT)
	cmd.SysProcAttr.Credential = cred
	srv := &pgServer{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		srv.err = cmd.Wait()
		close(srv.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return srv, nil
}

// kill ends the server and its backends at once. Backends put themselves in
// their own sessions, so a process-group kill misses them; they would exit
// on their own once they notice the postmaster is gone, but until then they
// hold its shared memory and a new server refuses to start. The postmaster
// is frozen first so it forks no new backend while they are collected.
func (s *pgServer) kill() {
	pid := s.cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGSTOP)
	children := childPIDs(pid)
	for _, c := range children {
		_ = syscall.Kill(c, syscall.SIGKILL)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	<-s.done
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if !slices.ContainsFunc(children, processAlive) {
			return
		}
	}
}

// waitPostgres polls until the server accepts connections, the process exits,
// or ctx ends.
func waitPostgres(ctx context.Context, srv *pgServer, url string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(attemptCtx, url)
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		lastErr = err
		select {
		case <-srv.done:
			return fmt.Errorf("server exited (%v)", srv.err)
		case <-ctx.Done():
			return fmt.Errorf("%w (last attempt: %v)", ctx.Err(), lastErr)
		case <-tick.C:
		}
	}
}

// postgresEnv drops PG* variables, which would otherwise steer the server and
// initdb (PGPORT, PGDATA, ...) away from what the arguments say.
func postgresEnv() []string {
	env := os.Environ()
	return slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "PG") })
}

// readLogSince returns the end of what the log got since offset, for errors.
func readLogSince(path string, offset int64) []byte {
	const limit = 4 << 10
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || offset > fi.Size() {
		return nil
	}
	offset = max(offset, fi.Size()-limit)
	b := make([]byte, fi.Size()-offset)
	n, _ := f.ReadAt(b, offset)
	return bytes.TrimSpace(b[:n])
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
