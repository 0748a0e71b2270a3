package activities

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/exportd/exportd"
)

// writeManifest writes m as indented JSON with its files streamed from
// each, so that a manifest of 100,000 files never sits in memory; the
// bytes are those json.MarshalIndent(m, "", "  ") would give with the
// files in m.Files.
func writeManifest(w io.Writer, m exportd.Manifest, each func(func(exportd.FileInfo) error) error) error {
	m.Files = []exportd.FileInfo{}
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("error encoding manifest: %w", err)
	}
	const slot = `"files": []`
	head, tail, ok := bytes.Cut(body, []byte(slot))
	if !ok {
		return fmt.Errorf("error encoding manifest: no files field")
	}
	if _, err := w.Write(head); err != nil {
		return err
	}
	if _, err := io.WriteString(w, `"files": [`); err != nil {
		return err
	}
	n := 0
	err = each(func(f exportd.FileInfo) error {
		b, err := json.MarshalIndent(f, "    ", "  ")
		if err != nil {
			return fmt.Errorf("error encoding manifest entry %s: %w", f.Name, err)
		}
		sep := ",\n    "
		if n == 0 {
			sep = "\n    "
		}
		n++
		if _, err := io.WriteString(w, sep); err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
	if err != nil {
		return err
	}
	if n > 0 {
		if _, err := io.WriteString(w, "\n  "); err != nil {
			return err
		}
	}
	if _, err := io.WriteString(w, "]"); err != nil {
		return err
	}
	if _, err := w.Write(tail); err != nil {
		return err
	}
	_, err = io.WriteString(w, "\n")
	return err
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
