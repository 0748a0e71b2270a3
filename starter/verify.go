package starter

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/blob"
)

// Verify re-reads every file of a manifest from dir and compares its size
// and sha256 with the manifest. Files in dir that the manifest does not
// list are ignored. Mismatches, missing files included, are reported
// together as a *VerifyError; any other error means dir could not be read.
func Verify(dir string, m exportd.Manifest) error {
	if err := checkNames(m); err != nil {
		return err
	}
	var bad []Mismatch
	for _, f := range m.Files {
		mm, err := verifyFile(filepath.Join(dir, f.Name), f)
		if err != nil {
			return err
		}
		if mm != nil {
			bad = append(bad, *mm)
		}
	}
	if len(bad) > 0 {
		return &VerifyError{ExportID: m.ExportID, Files: len(m.Files), Mismatches: bad}
	}
	return nil
}

func verifyFile(path string, f exportd.FileInfo) (*Mismatch, error) {
	fh, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Mismatch{File: f, Missing: true}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("error opening %s: %w", f.Name, err)
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return nil, fmt.Errorf("error reading %s: %w", f.Name, err)
	}
	return compare(f, n, hex.EncodeToString(h.Sum(nil))), nil
}

// compare is nil when n bytes with sha256 sum are what f promises.
func compare(f exportd.FileInfo, n int64, sum string) *Mismatch {
	if n == f.Bytes && strings.EqualFold(sum, f.SHA256) {
		return nil
	}
	return &Mismatch{File: f, Bytes: n, SHA256: sum}
}

// VerifyError lists the files that do not match their manifest.
type VerifyError struct {
	ExportID   string
	Files      int // files the manifest lists
	Mismatches []Mismatch
}

func (e *VerifyError) Error() string {
	parts := make([]string, len(e.Mismatches))
	for i, m := range e.Mismatches {
		parts[i] = m.String()
	}
	return fmt.Sprintf("%d of %d files of export %s do not match the manifest: %s",
		len(e.Mismatches), e.Files, e.ExportID, strings.Join(parts, "; "))
}

// Mismatch is one file that is not what its manifest entry promises.
type Mismatch struct {
	File    exportd.FileInfo // the manifest's entry
	Missing bool
	Bytes   int64  // size found
	SHA256  string // sha256 found, hex
}

func (m Mismatch) String() string {
	switch {
	case m.Missing:
		return m.File.Name + ": missing"
	case m.Bytes != m.File.Bytes:
		return fmt.Sprintf("%s: %d bytes, manifest says %d", m.File.Name, m.Bytes, m.File.Bytes)
	}
	return fmt.Sprintf("%s: sha256 %s, manifest says %s", m.File.Name, m.SHA256, m.File.SHA256)
}

// checkNames refuses a manifest whose file names could reach outside the
// download directory or overwrite the manifest itself, before any file
// is touched.
func checkNames(m exportd.Manifest) error {
	seen := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		if !validSegment(f.Name) || f.Name == exportd.ManifestName {
			return fmt.Errorf("manifest of export %s lists an unsafe file name %q", m.ExportID, f.Name)
		}
		if seen[f.Name] {
			return fmt.Errorf("manifest of export %s lists %q twice", m.ExportID, f.Name)
		}
		seen[f.Name] = true
	}
	return nil
}

// validSegment: one blob key segment, which is also a plain file name.
func validSegment(s string) bool {
	return blob.ValidKey(s) && !strings.Contains(s, "/")
}
