package devenv

import "syscall"

// ChildProcAttr puts a child in its own process group, so a terminal's
// Ctrl-C reaches only this process, which decides the order of shutdown,
// and has the kernel send it sig when the thread that forked it exits:
// a crashed parent leaves no server behind. Fork on a goroutine locked to
// its thread for the child's whole life, or the Go runtime may retire the
// thread, and with it the child, under it.
func ChildProcAttr(sig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: sig}
}
