package devenv

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pgBinaries are the PostgreSQL programs a cluster needs.
type pgBinaries struct {
	initdb, postgres string
}

const pgInstallHint = "install Debian's postgresql package (apt-get install postgresql) or put initdb and postgres on PATH"

// findPGBinaries looks on PATH, then under /usr/lib/postgresql/*/bin, highest
// version first. An existing cluster pins its major version: newer binaries
// refuse its files, so the matching Debian version wins when installed.
func findPGBinaries(pgdata string) (pgBinaries, error) {
	if v, err := os.ReadFile(filepath.Join(pgdata, "PG_VERSION")); err == nil {
		if b, ok := pgBinariesIn(filepath.Join("/usr/lib/postgresql", strings.TrimSpace(string(v)), "bin")); ok {
			return b, nil
		}
	}
	initdb, err1 := exec.LookPath("initdb")
	postgres, err2 := exec.LookPath("postgres")
	if err1 == nil && err2 == nil {
		return pgBinaries{initdb: initdb, postgres: postgres}, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		return comparePGVersions(filepath.Base(filepath.Dir(b)), filepath.Base(filepath.Dir(a)))
	})
	for _, d := range dirs {
		if b, ok := pgBinariesIn(d); ok {
			return b, nil
		}
	}
	return pgBinaries{}, errors.New("postgresql binaries (initdb, postgres) not found on PATH or under /usr/lib/postgresql/*/bin: " + pgInstallHint)
}

func pgBinariesIn(dir string) (pgBinaries, bool) {
	b := pgBinaries{initdb: filepath.Join(dir, "initdb"), postgres: filepath.Join(dir, "postgres")}
	for _, f := range []string{b.initdb, b.postgres} {
		if fi, err := os.Stat(f); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return pgBinaries{}, false
		}
	}
	return b, true
}

// comparePGVersions orders "9.6" < "15" < "16.2" numerically, part by part.
func comparePGVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(pa), len(pb)); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}

// clusterCredential returns whom the cluster runs as: nil for this user, or
// the postgres OS user when running as root, since PostgreSQL refuses to
// run as root.
func clusterCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres OS user to run the cluster (%v): %s", err, pgInstallHint)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("error parsing ids of the postgres user: %w", err)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(g))
			}
		}
	}
	return cred, nil
}

// checkReachableBy fails when the cluster's user cannot search every directory
// from / down to dir: the server would fail later with a cryptic message.
func checkReachableBy(dir string, cred *syscall.Credential) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("error checking data directory access: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok && !searchableBy(st, cred) {
			return fmt.Errorf("the postgres OS user (uid %d), which runs the cluster when exportd runs as root, cannot enter %s (mode %v, owner uid %d) on the way to data directory %s: use a data directory it can reach, for example under /var/tmp, or run chmod o+x %s",
				cred.Uid, d, fi.Mode().Perm(), st.Uid, dir, d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func searchableBy(st *syscall.Stat_t, cred *syscall.Credential) bool {
	mode := st.Mode
	switch {
	case st.Uid == cred.Uid:
		return mode&0o100 != 0
	case st.Gid == cred.Gid || slices.Contains(cred.Groups, st.Gid):
		return mode&0o010 != 0
	default:
		return mode&0o001 != 0
	}
}

// chownCluster hands a cluster directory to the cluster's user. A cluster
// made by another user (say, before running as root) is handed over whole,
// since the server refuses files it does not own.
func chownCluster(path string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("error checking cluster owner: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == cred.Uid {
		return nil
	}
	err = filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(cred.Uid), int(cred.Gid))
	})
	if err != nil {
		return fmt.Errorf("error handing cluster to the postgres user: %w", err)
	}
	return nil
}

// clearStalePID removes a postmaster.pid left by a server that did not shut
// down. A server whose PID was reused by an unrelated process would refuse
// to start, and an orphaned server of this cluster (its parent died without
// the death signal reaching it) would hold the data directory, so it is
// shut down first.
func (p *Postgres) clearStalePID(pgdata string) error {
	path := filepath.Join(pgdata, "postmaster.pid")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("error reading postmaster.pid: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	if pid > 0 && processAlive(pid) && servesCluster(pid, pgdata) {
		p.log().Warn("shutting down an orphaned postgres server of this cluster", "pid", pid)
		if err := stopOrphanPostgres(pid); err != nil {
			return err
		}
		// The server removes its own pid file when it shuts down cleanly.
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
	}
	p.log().Info("removing stale postmaster.pid", "pid", pid)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("error removing stale postmaster.pid: %w", err)
	}
	return nil
}

// processAlive reports whether pid is a live process; zombies count as dead.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// servesCluster reports whether pid is a postgres server with -D pgdata.
func servesCluster(pid int, pgdata string) bool {
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(string(cmdline), "\x00")
	i := slices.Index(args, "-D")
	return i >= 0 && i+1 < len(args) && args[i+1] == pgdata
}

// stopOrphanPostgres asks for a fast shutdown, then kills the process group.
func stopOrphanPostgres(pid int) error {
	_ = syscall.Kill(pid, syscall.SIGINT)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if !processAlive(pid) {
			return nil
		}
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if !processAlive(pid) {
			return nil
		}
	}
	return fmt.Errorf("orphaned postgres server (pid %d) of this cluster does not exit", pid)
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	parent := strconv.Itoa(pid)
	var pids []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// After the parenthesised command name: state, ppid, ...
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		if fields := strings.Fields(string(stat[i+1:])); len(fields) > 1 && fields[1] == parent {
			pids = append(pids, child)
		}
	}
	return pids
}

// ClusterReachable reports, with the reason, whether a cluster in dir
// could run: when exportd runs as root the postgres OS user must be able
// to enter every directory down to dir. It is nil for any other user.
func ClusterReachable(dir string) error {
	cred, err := clusterCredential()
	if err != nil || cred == nil {
		return err
	}
	return checkReachableBy(dir, cred)
}
