//go:build !linux

package devenv

import "syscall"

// ChildProcAttr puts a child in its own process group, so a terminal's
// Ctrl-C reaches only this process, which decides the order of shutdown.
// Only Linux has a parent-death signal: elsewhere sig is unused, and a
// crashed parent leaves the child running (Stop and Close still end it).
func ChildProcAttr(sig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
