// Package pgtest gives each test a real PostgreSQL database of its own,
// freshly migrated, so store tests run against the server they will meet in
// production and never see each other's rows.
//
// The server is the one named by EXPORTD_TEST_DATABASE_URL (its role needs
// CREATEDB), or else a private cluster that devenv.Postgres starts in a
// temporary directory, once per test binary. Call Main from TestMain to stop
// that cluster and remove its directory when the tests end; without it the
// cluster still goes down with the test binary (devenv sets a parent-death
// signal) but its directory stays behind in the temporary directory.
//
// Each test gets a copy of a template database migrated once per schema
// (its name carries a hash of the migrations, so an external server keeps
// reusing it until the migrations change), made with CREATE DATABASE ...
// TEMPLATE, which takes milliseconds, and dropped when the test ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exportd/exportd/devenv"
	"github.com/exportd/exportd/postgres"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// EnvURL names the variable that points the tests at an existing server.
const EnvURL = "EXPORTD_TEST_DATABASE_URL"

// templateLockKey serialises template builds of concurrent test binaries
// sharing an external server.
const templateLockKey int64 = 0x6578706f727474

// server is the database server of this test binary. Package state is the
// point here: one server per binary, shared by all its tests.
type server struct {
	adminURL string
	admin    *pgxpool.Pool
	template string
	cluster  *devenv.Postgres // nil for an external server
	dir      string
}

var (
	once      sync.Once
	shared    *server
	sharedErr error
)

// Main runs the tests, then stops the private cluster, if one was started,
// and removes its directory. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.close()
	}
	os.Exit(code)
}

// New returns a pool on a new migrated database that is dropped when the
// test ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	url := NewURL(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatalf("pgtest: opening pool: %v", err)
	}
	// Cleanups run last-in first-out: the pool closes before the drop.
	t.Cleanup(pool.Close)
	return pool
}

// NewURL returns the URL of a new migrated database that is dropped when
// the test ends, for code under test that opens its own pool.
func NewURL(t testing.TB) string {
	t.Helper()
	url, drop, err := CreateDatabase(context.Background())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := drop(context.Background()); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return url
}

// CreateDatabase makes a new migrated database and returns its URL and a
// function that drops it, for examples and TestMain, which have no
// testing.TB to clean up with.
func CreateDatabase(ctx context.Context) (url string, drop func(context.Context) error, err error) {
	once.Do(func() { shared, sharedErr = start() })
	if sharedErr != nil {
		return "", nil, sharedErr
	}
	name := "exportd_test_" + randomHex(8)
	if _, err := shared.admin.Exec(ctx, "CREATE DATABASE "+ident(name)+" TEMPLATE "+ident(shared.template)); err != nil {
		return "", nil, fmt.Errorf("creating database: %w", err)
	}
	drop = func(ctx context.Context) error {
		if _, err := shared.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("dropping database %s: %w", name, err)
		}
		return nil
	}
	url, err = withDatabase(shared.adminURL, name)
	if err != nil {
		_ = drop(ctx)
		return "", nil, err
	}
	return url, drop, nil
}

// Server starts a private cluster for one test, with the application
// database migrated, and stops it when the test ends. It is for tests that
// stop, kill or restart PostgreSQL, which would disturb a shared server.
func Server(t testing.TB) *devenv.Postgres {
	t.Helper()
	dir, err := reachableTempDir()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pg := &devenv.Postgres{Dir: dir, NoSync: true}
	ctx := context.Background()
	if err := pg.Start(ctx); err != nil {
		t.Fatalf("pgtest: starting postgres: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := pg.Stop(ctx); err != nil {
			t.Errorf("pgtest: stopping postgres: %v", err)
		}
	})
	pool, err := postgres.Open(ctx, pg.URL())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer pool.Close()
	if err := postgres.Migrate(ctx, pool); err != nil {
		t.Fatalf("pgtest: migrating: %v", err)
	}
	return pg
}

// start connects to the test server, starting a private one if none is
// configured, and makes sure the template database exists.
func start() (*server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv := &server{adminURL: os.Getenv(EnvURL)}
	if srv.adminURL == "" {
		dir, err := reachableTempDir()
		if err != nil {
			return nil, err
		}
		srv.dir = dir
		srv.cluster = &devenv.Postgres{Dir: dir, Database: "postgres", NoSync: true}
		if err := srv.cluster.Start(ctx); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("starting private postgres (or set %s): %w", EnvURL, err)
		}
		srv.adminURL = srv.cluster.URL()
	}
	admin, err := postgres.Open(ctx, srv.adminURL)
	if err != nil {
		srv.close()
		return nil, err
	}
	srv.admin = admin
	if err := srv.ensureTemplate(ctx); err != nil {
		srv.close()
		return nil, err
	}
	return srv, nil
}

// ensureTemplate builds the migrated template under a name of its own and
// renames it into place, so that a build interrupted halfway is never
// mistaken for a finished one.
func (s *server) ensureTemplate(ctx context.Context) error {
	sum, err := migrationsHash()
	if err != nil {
		return err
	}
	s.template = "exportd_tmpl_" + sum
	pooled, err := s.admin.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquiring connection: %w", err)
	}
	// Ending the session releases the lock whatever happens.
	conn := pooled.Hijack()
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLockKey); err != nil {
		return fmt.Errorf("locking template: %w", err)
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", s.template).Scan(&exists); err != nil {
		return fmt.Errorf("looking for template: %w", err)
	}
	if exists {
		return nil
	}
	building := s.template + "_new"
	for _, sql := range []string{
		"DROP DATABASE IF EXISTS " + ident(building) + " WITH (FORCE)",
		"CREATE DATABASE " + ident(building),
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("creating template: %w", err)
		}
	}
	cfg, err := pgxpool.ParseConfig(s.adminURL)
	if err != nil {
		return fmt.Errorf("parsing database url: %w", err)
	}
	cfg.ConnConfig.Database = building
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("opening template: %w", err)
	}
	err = postgres.Migrate(ctx, pool)
	pool.Close()
	if err != nil {
		return fmt.Errorf("migrating template: %w", err)
	}
	// No session may be connected to a template while it is copied.
	for _, sql := range []string{
		"ALTER DATABASE " + ident(building) + " RENAME TO " + ident(s.template),
		"ALTER DATABASE " + ident(s.template) + " WITH ALLOW_CONNECTIONS false",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("finishing template: %w", err)
		}
	}
	return nil
}

func (s *server) close() {
	if s.admin != nil {
		s.admin.Close()
	}
	if s.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = s.cluster.Stop(ctx)
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// migrationsHash names the schema, so a template is rebuilt exactly when
// the migrations change.
func migrationsHash() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(postgres.Migrations(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(postgres.Migrations(), path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hashing migrations: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// reachableTempDir makes a temporary directory that the postgres OS user
// can enter when the tests run as root; t.TempDir's are private to root.
func reachableTempDir() (string, error) {
	dir, err := os.MkdirTemp("", "exportd-pgtest-")
	if err != nil {
		return "", fmt.Errorf("creating temporary directory: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("opening temporary directory: %w", err)
	}
	return dir, nil
}

// withDatabase returns connString pointing at another database, for both
// URL and keyword/value forms.
func withDatabase(connString, name string) (string, error) {
	if !strings.Contains(connString, "://") {
		// Later keywords win in the keyword/value form.
		return connString + " dbname=" + name, nil
	}
	u, err := url.Parse(connString)
	if err != nil {
		return "", fmt.Errorf("parsing database url: %w", err)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
