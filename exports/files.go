package exports

import (
	"context"
	"errors"
	"strconv"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/blob"
	"github.com/exportd/exportd/postgres"
)

// FileIndex is the record of an export's committed files;
// *postgres.Files implements it.
type FileIndex interface {
	List(ctx context.Context, exportID, cursor string, limit int) ([]exportd.FileInfo, string, error)
	File(ctx context.Context, exportID, name string) (exportd.FileInfo, error)
	Recorded(ctx context.Context, exportID string) (bool, error)
}

// MaxFilesPage bounds a page of files; status documents list
// InlineFiles files and link the rest.
const (
	MaxFilesPage = 1000
	InlineFiles  = 100
)

// Files returns up to limit files of a ready export in manifest order,
// after cursor ("" for the first page), and the cursor of the next page
// ("" after the last). A cursor Files did not issue is a
// *exportd.ValidationError naming it.
func (s *Service) Files(ctx context.Context, st exportd.State, cursor string, limit int) ([]exportd.FileInfo, string, error) {
	if err := Ready(st); err != nil {
		return nil, "", err
	}
	limit = min(max(limit, 1), MaxFilesPage)
	id := st.Spec.ExportID
	first := cursor == "" && limit == InlineFiles
	if first {
		if files, next, ok := s.cache().firstPage(id, st); ok {
			return files, next, nil
		}
	}
	indexed, err := s.indexed(ctx, id)
	if err != nil {
		return nil, "", err
	}
	var files []exportd.FileInfo
	var next string
	if !indexed {
		files, next, err = s.manifestPage(ctx, id, cursor, limit)
	} else {
		files, next, err = s.Index.List(ctx, id, cursor, limit)
		if errors.Is(err, postgres.ErrInvalidCursor) {
			return nil, "", &exportd.ValidationError{Field: "cursor", Reason: "is not a cursor this export's file listing gave"}
		}
	}
	if err == nil && first {
		s.cache().keepPage(id, st, files, next)
	}
	return files, next, err
}

// indexed reports whether an export's files are in the index; exports
// that finished before it existed, or a Service without one, are served
// from their manifest.
func (s *Service) indexed(ctx context.Context, exportID string) (bool, error) {
	if s.Index == nil {
		return false, nil
	}
	return s.Index.Recorded(ctx, exportID)
}

// manifestPage pages the files of an export that has no index records,
// by position in its manifest.
func (s *Service) manifestPage(ctx context.Context, exportID, cursor string, limit int) ([]exportd.FileInfo, string, error) {
	start := 0
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil || n < 0 {
			return nil, "", &exportd.ValidationError{Field: "cursor", Reason: "is not a cursor this export's file listing gave"}
		}
		start = n
	}
	m, err := s.Manifest(ctx, exportID)
	if err != nil {
		return nil, "", err
	}
	if start >= len(m.Files) {
		return []exportd.FileInfo{}, "", nil
	}
	end := min(start+limit, len(m.Files))
	next := ""
	if end < len(m.Files) {
		next = strconv.Itoa(end)
	}
	return m.Files[start:end], next, nil
}

// File returns a ready export's file by name; names the export never
// committed never reach the store.
func (s *Service) File(ctx context.Context, st exportd.State, name string) (exportd.FileInfo, error) {
	if err := Ready(st); err != nil {
		return exportd.FileInfo{}, err
	}
	id := st.Spec.ExportID
	if len(name) > 255 || !blob.ValidKey(id+"/"+name) {
		// Never a name the export wrote; nor one to send to a database.
		return exportd.FileInfo{}, fileNotFound(name)
	}
	indexed, err := s.indexed(ctx, id)
	if err != nil {
		return exportd.FileInfo{}, err
	}
	if indexed {
		f, err := s.Index.File(ctx, id, name)
		if errors.Is(err, postgres.ErrFileNotFound) {
			return f, fileNotFound(name)
		}
		return f, err
	}
	m, err := s.Manifest(ctx, id)
	if err != nil {
		return exportd.FileInfo{}, err
	}
	for _, f := range m.Files {
		if f.Name == name {
			return f, nil
		}
	}
	return exportd.FileInfo{}, fileNotFound(name)
}

func fileNotFound(name string) *exportd.Error {
	return exportd.Errorf(exportd.CodeNotFound, "file %q not found", name)
}
