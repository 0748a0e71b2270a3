// Package bench holds the measuring instruments of `exportd bench`
// (throughput, memory and CPU under load): process probes read from
// /proc, the HTTP load generator, the PostgreSQL COPY limit, and the
// summary it reports.
package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MiB is a mebibyte, the unit peak RSS is reported in.
const MiB = 1 << 20

// clockTicks is USER_HZ, the unit of CPU times in /proc/<pid>/stat; it is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// Memory returns a process's resident set size now (VmRSS) and its peak
// since it started (VmHWM), in bytes.
func Memory(pid int) (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("error reading process status: %w", err)
	}
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		name, val, ok := strings.Cut(s.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(val) // "123456 kB"
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("unexpected %s line %q", name, s.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("unexpected %s line %q", name, s.Text())
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	return rss, peak, nil
}

// RSSSampler records the largest VmRSS of a process seen at a fixed
// interval: a cross-check of VmHWM, and the only peak measure for a
// process that is not restarted between runs.
type RSSSampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	max  int64
}

// SampleRSS starts sampling pid every interval until Stop.
func SampleRSS(pid int, every time.Duration) *RSSSampler {
	s := &RSSSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				s.sample()
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *RSSSampler) sample() {
	rss, _, err := Memory(s.pid)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.max = max(s.max, rss)
	s.mu.Unlock()
}

// Stop ends sampling and returns the largest VmRSS seen, in bytes.
func (s *RSSSampler) Stop() int64 {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max
}

// procStat is what CPU accounting needs from /proc/<pid>/stat.
type procStat struct {
	ppid int
	// cpu is user+system time of the process itself, in ticks; waited
	// adds that of its children it has reaped, so that short-lived
	// PostgreSQL backends still count once they are gone.
	cpu, waited int64
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name is in parentheses and may hold spaces; the fields
	// after it are space separated: state ppid ... utime(14) stime(15)
	// cutime(16) cstime(17), numbered from 1 in proc(5).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	n := make([]int64, 4)
	for j, k := range []int{11, 12, 13, 14} {
		if n[j], err = strconv.ParseInt(f[k], 10, 64); err != nil {
			return procStat{}, fmt.Errorf("unexpected /proc/%d/stat", pid)
		}
	}
	ppid, _ := strconv.Atoi(f[1])
	return procStat{ppid: ppid, cpu: n[0] + n[1], waited: n[2] + n[3]}, nil
}

// ProcessCPU returns the CPU seconds (user+system) a process itself has
// used, not counting its children.
func ProcessCPU(pid int) (float64, error) {
	st, err := readStat(pid)
	if err != nil {
		return 0, err
	}
	return float64(st.cpu) / clockTicks, nil
}

// TreeCPU returns, for each pid, the CPU seconds used by it and all its
// descendants, living or reaped. A pid that is gone reports zero.
func TreeCPU(pids ...int) (map[int]float64, error) {
	paths, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, err
	}
	stats := make(map[int]procStat, len(paths))
	children := map[int][]int{}
	for _, p := range paths {
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue // exited while we looked
		}
		stats[pid] = st
		children[st.ppid] = append(children[st.ppid], pid)
	}
	out := make(map[int]float64, len(pids))
	for _, root := range pids {
		var ticks int64
		stack := []int{root}
		for len(stack) > 0 {
			pid := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			st, ok := stats[pid]
			if !ok {
				continue
			}
			ticks += st.cpu + st.waited
			stack = append(stack, children[pid]...)
		}
		out[root] = float64(ticks) / clockTicks
	}
	return out, nil
}

// Children returns the direct children of a process, pid to command name.
func Children(parent int) (map[int]string, error) {
	paths, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, err
	}
	out := map[int]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(string(b[end+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(parent) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil {
			continue
		}
		out[pid] = string(b[open+1 : end])
	}
	return out, nil
}

// LoadAverage returns the 1, 5 and 15 minute load averages, to tell a
// quiet machine from a busy one next to the numbers measured on it.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
