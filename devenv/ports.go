package devenv

import (
	"fmt"
	"net"
	"strconv"
)

// FreePort asks the kernel for a port on 127.0.0.1 that nothing listens on,
// so dev servers never clash with each other or with a second `dev` run.
// The port is released before returning, so another process may still take
// it first; callers retry on a bind error.
func FreePort() (int, error) {
	ports, err := FreePorts([]int{0})
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// FreePorts returns one distinct free port on 127.0.0.1 for each entry of
// prefer, keeping an entry that is still free (0 means any), so that a
// restarted server stays where a developer's browser tab points. It holds
// every port until all are chosen, so none is handed out twice.
func FreePorts(prefer []int) ([]int, error) {
	ports := make([]int, len(prefer))
	for i, p := range prefer {
		var l net.Listener
		var err error
		if p > 0 && p <= 65535 {
			l, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		}
		if l == nil {
			l, err = net.Listen("tcp", "127.0.0.1:0")
		}
		if err != nil {
			return nil, fmt.Errorf("error finding a free port: %w", err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}
