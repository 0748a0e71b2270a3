package starter

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/blob"
)

// Download copies a READY export's files from the blob store into dir and
// returns its manifest. It reads the store directly, so it needs the
// worker's store configuration (the same directory, or the same S3
// bucket and prefix); a service without access to the store should
// download through the HTTP API instead.
//
// Each file is streamed into a temporary name in dir while its sha256 is
// taken, and renamed to its own name only if size and sha256 match the
// manifest; a file that does not match is removed, along with any older
// copy under its name, and all such files are reported together as a
// *VerifyError. manifest.json is written to dir last, so its presence
// means every file arrived intact. Files are created with mode 0600: they
// hold a merchant's data.
func Download(ctx context.Context, store blob.Store, exportID, dir string) (exportd.Manifest, error) {
	raw, m, err := readManifest(ctx, store, exportID)
	if err != nil {
		return exportd.Manifest{}, err
	}
	if err := checkNames(m); err != nil {
		return m, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return m, fmt.Errorf("error creating download directory: %w", err)
	}
	var bad []Mismatch
	for _, f := range m.Files {
		mm, err := downloadFile(ctx, store, exportID, dir, f)
		if err != nil {
			return m, err
		}
		if mm != nil {
			bad = append(bad, *mm)
		}
	}
	if len(bad) > 0 {
		return m, &VerifyError{ExportID: exportID, Files: len(m.Files), Mismatches: bad}
	}
	// The files' renames reach the disk before the manifest's does.
	if err := syncDir(dir); err != nil {
		return m, err
	}
	tmp, _, _, err := writeTemp(ctx, dir, exportd.ManifestName, bytes.NewReader(raw))
	if err != nil {
		return m, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, exportd.ManifestName)); err != nil {
		os.Remove(tmp)
		return m, fmt.Errorf("error writing %s: %w", exportd.ManifestName, err)
	}
	return m, syncDir(dir)
}

// readManifest returns the manifest as stored, so that the copy written
// into the download directory keeps fields this version does not know.
func readManifest(ctx context.Context, store blob.Store, exportID string) ([]byte, exportd.Manifest, error) {
	var m exportd.Manifest
	if !validSegment(exportID) {
		return nil, m, fmt.Errorf("invalid export id %q", exportID)
	}
	obj, err := store.Open(ctx, exportID+"/"+exportd.ManifestName)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, m, fmt.Errorf("export %s has no manifest in this blob store (not ready yet, expired, or not the store the worker writes to): %w", exportID, err)
	}
	if err != nil {
		return nil, m, fmt.Errorf("error opening manifest: %w", err)
	}
	defer obj.Close()
	raw, err := io.ReadAll(obj)
	if err != nil {
		return nil, m, fmt.Errorf("error reading manifest: %w", err)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, m, fmt.Errorf("error decoding manifest: %w", err)
	}
	if m.ExportID != exportID {
		return nil, m, fmt.Errorf("the manifest under export %s names export %q", exportID, m.ExportID)
	}
	return raw, m, nil
}

// downloadFile places one file in dir if it matches f, and returns the
// mismatch otherwise; an error means the copy itself failed.
func downloadFile(ctx context.Context, store blob.Store, exportID, dir string, f exportd.FileInfo) (*Mismatch, error) {
	obj, err := store.Open(ctx, exportID+"/"+f.Name)
	if err != nil {
		return nil, fmt.Errorf("error opening %s: %w", f.Name, err)
	}
	defer obj.Close()
	tmp, n, sum, err := writeTemp(ctx, dir, f.Name, obj)
	if err != nil {
		return nil, err
	}
	final := filepath.Join(dir, f.Name)
	if mm := compare(f, n, sum); mm != nil {
		os.Remove(tmp)
		if err := os.Remove(final); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("error removing the earlier copy of %s: %w", f.Name, err)
		}
		return mm, nil
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("error placing %s: %w", f.Name, err)
	}
	return nil, nil
}

// writeTemp streams r into a new temporary file in dir, named after name
// but starting with a dot, taking its sha256 on the way, and syncs it; the
// caller renames it into place or removes it.
func writeTemp(ctx context.Context, dir, name string, r io.Reader) (tmp string, n int64, sum string, err error) {
	f, err := os.CreateTemp(dir, "."+name+".*.download")
	if err != nil {
		return "", 0, "", fmt.Errorf("error creating a temporary file for %s: %w", name, err)
	}
	h := sha256.New()
	n, err = io.Copy(io.MultiWriter(f, h), ctxReader{ctx, r})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", 0, "", fmt.Errorf("error downloading %s: %w", name, err)
	}
	return f.Name(), n, hex.EncodeToString(h.Sum(nil)), nil
}

// ctxReader stops a long copy when ctx ends, which a local file's reads
// would not notice.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("error syncing download directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("error syncing download directory: %w", err)
	}
	return nil
}
