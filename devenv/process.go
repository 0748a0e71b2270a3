package devenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// Process is one long-running child process of a launcher (`exportd
// cluster`): its own process group, killed when the launcher dies, its
// output appended to a log file.
type Process struct {
	// Name labels the process in errors.
	Name string
	// Path is the binary; Args, Env and Dir are as in exec.Cmd.
	Path string
	Args []string
	Env  []string
	Dir  string
	// LogPath receives stdout and stderr, appended.
	LogPath string

	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // the exit status, written before done is closed
}

// Start launches the process. As for the PostgreSQL and Temporal
// launchers, the fork happens on a goroutine locked to its thread for the
// child's whole life, because Pdeathsig fires when the forking thread
// exits, not the launcher.
func (p *Process) Start() error {
	logFile, err := os.OpenFile(p.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("error opening %s log: %w", p.Name, err)
	}
	fmt.Fprintf(logFile, "--- %s start %s\n", time.Now().UTC().Format(time.RFC3339), p.Path)
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env, cmd.Dir = p.Env, p.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = ChildProcAttr(syscall.SIGKILL)
	p.cmd, p.done, p.err = cmd, make(chan struct{}), nil
	forked := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer logFile.Close()
		if err := cmd.Start(); err != nil {
			forked <- err
			return
		}
		forked <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-forked; err != nil {
		return fmt.Errorf("error starting %s (%s): %w", p.Name, p.Path, err)
	}
	return nil
}

// Pid is the process id; 0 before Start.
func (p *Process) Pid() int {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Done is closed when the process exits.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the exit status once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the process group, the graceful stop every
// exportd command and the Temporal server implement, and SIGKILL after
// timeout. It returns once the process is gone.
func (p *Process) Stop(timeout time.Duration) error {
	if p.cmd == nil || p.Exited() {
		return nil
	}
	pid := p.cmd.Process.Pid
	if err := syscall.Kill(-pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("error stopping %s: %w", p.Name, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("%s did not stop within %s of SIGTERM, killed it", p.Name, timeout)
}
