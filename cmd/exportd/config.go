package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// envName is the environment variable that stands for a flag.
func envName(flagName string) string {
	return "EXPORTD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse reads flags with their environment equivalents: defaults first,
// then EXPORTD_* variables, then the command line.
func parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && err == nil {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("invalid %s=%q: %w", envName(f.Name), v, serr)
			}
		}
	})
	if err != nil {
		return err
	}
	return fs.Parse(args)
}

// usage prints a flag set's flags with their environment names.
func usage(fs *flag.FlagSet, summary string) func() {
	return func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: exportd %s [flags]\n\n%s\n\nflags (each also read from its environment variable):\n", fs.Name(), summary)
		fs.VisitAll(func(f *flag.Flag) {
			def := f.DefValue
			if def == "" {
				def = `""`
			}
			fmt.Fprintf(w, "  --%-24s %s\n      %s (default %s)\n", f.Name, envName(f.Name), f.Usage, def)
		})
	}
}

// logFlags are the logging flags every subcommand has.
type logFlags struct {
	level  string
	format string
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&l.format, "log-format", "text", "log format: text or json")
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	h, err := l.handler(w, slog.LevelDebug)
	if err != nil {
		return nil, err
	}
	return slog.New(h), nil
}

// handler returns a handler for w at the configured level, or at least
// at floor, whichever is higher.
// fileLogger returns the logger of a command that owns a data dir: the
// full log (debug up) appended to dir/name, warnings also to the
// terminal. The caller closes the file.
func (l *logFlags) fileLogger(dir, name string, terminal io.Writer) (*slog.Logger, *os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("error creating data dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("error opening log file: %w", err)
	}
	toFile, err := l.handler(f, slog.LevelDebug)
	if err == nil {
		var toTerminal slog.Handler
		if toTerminal, err = l.handler(terminal, slog.LevelWarn); err == nil {
			return slog.New(slog.NewMultiHandler(toFile, toTerminal)), f, nil
		}
	}
	f.Close()
	return nil, nil, err
}

func (l *logFlags) handler(w io.Writer, floor slog.Level) (slog.Handler, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("invalid log level %q", l.level)
	}
	opts := &slog.HandlerOptions{Level: max(level, floor)}
	switch l.format {
	case "text":
		return slog.NewTextHandler(w, opts), nil
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	}
	return nil, fmt.Errorf("invalid log format %q (text or json)", l.format)
}
