package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/api/internal/httpx"
	"github.com/exportd/exportd/exports"
	"github.com/exportd/exportd/postgres"
)

// authed resolves the API key to an app before calling next.
func (h *handlers) authed(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		key := r.Header.Get("X-API-Key")
		if token, ok := httpx.Bearer(r.Header.Get("Authorization")); key == "" && ok {
			key = token
		}
		if key == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="exportd"`)
			return errorf(codeUnauthorized, "send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
		}
		app, err := h.apps.AppByAPIKey(r.Context(), key)
		if errors.Is(err, postgres.ErrNotFound) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="exportd", error="invalid_token"`)
			return errorf(codeUnauthorized, "the API key is unknown or revoked")
		}
		if err != nil {
			return fmt.Errorf("error authenticating: %w", err)
		}
		return next(w, r.WithContext(withApp(r.Context(), app)))
	}
}

// createRequest is the body of POST /v1/exports.
type createRequest struct {
	MerchantID     string           `json:"merchantId"`
	Dataset        exportd.Dataset  `json:"dataset"`
	Mode           exportd.Mode     `json:"mode"`
	Cursor         string           `json:"cursor"`
	Start          string           `json:"start"`
	End            string           `json:"end"`
	Formats        []exportd.Format `json:"formats"`
	MaxRowsPerFile int              `json:"maxRowsPerFile"`
	Parallelism    int              `json:"parallelism"`
	Locations      []string         `json:"locations"`
	CallbackURL    string           `json:"callbackUrl"`
	Retention      exportd.Duration `json:"retention"`
}

// spec validates the request into an export spec.
func (c createRequest) spec() (exportd.Spec, error) {
	if c.MerchantID == "" {
		return exportd.Spec{}, &apiError{code: codeInvalidRequest, field: "merchantId", detail: "merchantId is required"}
	}
	// A window needs both times; other modes take none, and a time given
	// to one is refused by Normalize, naming it, once it parsed.
	window := c.Mode == exportd.ModeWindow || c.Mode == "window"
	var start, end time.Time
	var err error
	if window || c.Start != "" {
		if start, err = parseTime("start", c.Start); err != nil {
			return exportd.Spec{}, err
		}
	}
	if window || c.End != "" {
		if end, err = parseTime("end", c.End); err != nil {
			return exportd.Spec{}, err
		}
	}
	if len(c.Locations) > 1000 {
		return exportd.Spec{}, &apiError{code: codeInvalidRequest, field: "locations", detail: "at most 1000 locations"}
	}
	// The engine fills the ids and validates the rest.
	s := exportd.Spec{
		MerchantID: c.MerchantID, Dataset: c.Dataset, Mode: c.Mode, Cursor: c.Cursor,
		Start: start, End: end, Formats: c.Formats, MaxRowsPerFile: c.MaxRowsPerFile, Parallelism: c.Parallelism,
		Locations: c.Locations, Retention: c.Retention,
	}
	if c.CallbackURL != "" {
		s.Webhook = &exportd.Webhook{URL: c.CallbackURL}
	}
	return s, nil
}

func parseTime(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, &apiError{code: codeInvalidRequest, field: field, detail: field + " is required (RFC 3339, like 2024-01-31T00:00:00Z)"}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, &apiError{code: codeInvalidRequest, field: field, detail: fmt.Sprintf("%s %q is not an RFC 3339 time like 2024-01-31T00:00:00Z", field, v)}
	}
	// The range is checked in UTC, the form the spec is stored in: a
	// local 9999-12-31T23:59:59-01:00 is in the year 10000, which JSON
	// cannot hold.
	t = t.UTC()
	if t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, &apiError{code: codeInvalidRequest, field: field, detail: field + " must be between 1970 and 9999"}
	}
	return t, nil
}

func (h *handlers) createExport(w http.ResponseWriter, r *http.Request) error {
	app := appFrom(r.Context())
	var req createRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	spec, err := req.spec()
	if err != nil {
		return err
	}
	state, created, err := h.engine.Create(r.Context(), app, spec, r.Header.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/exports/"+state.Spec.ExportID)
	status := http.StatusAccepted
	if !created {
		status = http.StatusOK
	}
	return writeJSON(w, status, h.document(r, state, nil))
}

func (h *handlers) getExport(w http.ResponseWriter, r *http.Request) error {
	app := appFrom(r.Context())
	st, err := h.engine.Get(r.Context(), app, r.PathValue("id"))
	if err != nil {
		return err
	}
	var page *filePage
	if st.Phase == exportd.PhaseReady {
		files, next, err := h.engine.Files(r.Context(), st, "", exports.InlineFiles)
		switch {
		case exportd.ErrorCode(err) == exportd.CodeGone:
			// Purged between the describe and now: expired, not a 410
			// for the status document itself.
			st.Phase = exportd.PhaseExpired
		case err != nil:
			return err
		default:
			page = &filePage{files: files, next: next}
		}
	}
	return writeJSON(w, http.StatusOK, h.document(r, st, page))
}

// filePage is one page of an export's files and the cursor of the next.
type filePage struct {
	files []exportd.FileInfo
	next  string
}

// listFiles pages through a ready export's files, in manifest order:
// ?cursor= from the previous page's next link, ?limit= up to 1000.
func (h *handlers) listFiles(w http.ResponseWriter, r *http.Request) error {
	st, err := h.engine.Get(r.Context(), appFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		return err
	}
	limit := exports.InlineFiles
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > exports.MaxFilesPage {
			return &exportd.ValidationError{Field: "limit", Reason: fmt.Sprintf("must be a whole number from 1 to %d", exports.MaxFilesPage)}
		}
		limit = n
	}
	cursor := r.URL.Query().Get("cursor")
	if len(cursor) > 256 {
		return &exportd.ValidationError{Field: "cursor", Reason: "is not a cursor this export's file listing gave"}
	}
	files, next, err := h.engine.Files(r.Context(), st, cursor, limit)
	if err != nil {
		return err
	}
	base := h.baseURL(r) + "/v1/exports/" + st.Spec.ExportID
	doc := filesDoc{Files: fileDocs(base, h.signer, st, files), Links: map[string]string{"export": base}}
	if next != "" {
		doc.Links["next"] = base + "/files?" + url.Values{"cursor": {next}, "limit": {strconv.Itoa(limit)}}.Encode()
	}
	return writeJSON(w, http.StatusOK, doc)
}

// filesDoc is a page of an export's files.
type filesDoc struct {
	Files []fileDoc         `json:"files"`
	Links map[string]string `json:"links"`
}

func (h *handlers) deleteExport(w http.ResponseWriter, r *http.Request) error {
	st, err := h.engine.Cancel(r.Context(), appFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		return err
	}
	status := http.StatusOK
	if !st.Phase.Final() {
		status = http.StatusAccepted
	}
	return writeJSON(w, status, h.document(r, st, nil))
}

// patchRequest is the body of PATCH /v1/exports/{id}: a new expiry.
type patchRequest struct {
	AvailableUntil string `json:"availableUntil"`
}

func (h *handlers) patchExport(w http.ResponseWriter, r *http.Request) error {
	var req patchRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	until, err := parseTime("availableUntil", req.AvailableUntil)
	if err != nil {
		return err
	}
	st, err := h.engine.Extend(r.Context(), appFrom(r.Context()), r.PathValue("id"), until)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, h.document(r, st, nil))
}

func (h *handlers) listExports(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	merchant := q.Get("merchantId")
	if merchant == "" {
		return &apiError{code: codeInvalidRequest, field: "merchantId", detail: "merchantId is required"}
	}
	var phase exportd.Phase
	if st := q.Get("status"); st != "" {
		p, ok := phaseOfStatus(st)
		if !ok {
			return &apiError{code: codeInvalidRequest, field: "status", detail: "status must be one of queued, running, succeeded, failed, canceled, expired"}
		}
		phase = p
	}
	limit := 100
	if ps := q.Get("limit"); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 1 || n > 1000 {
			return &apiError{code: codeInvalidRequest, field: "limit", detail: "limit must be a number from 1 to 1000"}
		}
		limit = n
	}
	states, err := h.engine.List(r.Context(), appFrom(r.Context()), merchant, phase, limit)
	if err != nil {
		return err
	}
	docs := make([]exportDoc, 0, len(states))
	for _, st := range states {
		docs = append(docs, h.document(r, st, nil))
	}
	return writeJSON(w, http.StatusOK, map[string]any{"exports": docs})
}

func phaseOfStatus(s string) (exportd.Phase, bool) {
	for _, p := range []exportd.Phase{exportd.PhaseQueued, exportd.PhaseExporting, exportd.PhaseReady, exportd.PhaseExpired, exportd.PhaseFailed, exportd.PhaseCanceled} {
		if p.Status() == s {
			return p, true
		}
	}
	return "", false
}

func (h *handlers) getManifest(w http.ResponseWriter, r *http.Request) error {
	st, err := h.engine.Get(r.Context(), appFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := exports.Ready(st); err != nil {
		return err
	}
	return h.engine.ServeManifest(w, r, st.Spec.ExportID)
}

// getFile serves a file to its app, or to anyone holding a signed URL.
func (h *handlers) getFile(w http.ResponseWriter, r *http.Request) error {
	id, name := r.PathValue("id"), r.PathValue("name")
	if r.URL.Query().Has("signature") {
		if h.signer == nil || !exportd.ValidID(id) {
			return errorf(codeNotFound, "export %q not found", id)
		}
		if err := h.signer.Verify(id, name, r.URL.Query()); err != nil {
			if errors.Is(err, exports.ErrExpiredURL) {
				return errorf(codeGone, "this signed URL has expired")
			}
			return errorf(codeUnauthorized, "the URL signature is invalid")
		}
		st, err := h.engine.Lookup(r.Context(), id)
		if err != nil {
			return err
		}
		f, err := h.engine.File(r.Context(), st, name)
		if err != nil {
			return err
		}
		return h.engine.ServeFile(w, r, id, f)
	}
	return h.authed(func(w http.ResponseWriter, r *http.Request) error {
		st, err := h.engine.Get(r.Context(), appFrom(r.Context()), id)
		if err != nil {
			return err
		}
		f, err := h.engine.File(r.Context(), st, name)
		if err != nil {
			return err
		}
		return h.engine.ServeFile(w, r, id, f)
	})(w, r)
}

// exportDoc is the native status document.
type exportDoc struct {
	ID         string           `json:"id"`
	MerchantID string           `json:"merchantId"`
	Dataset    exportd.Dataset  `json:"dataset"`
	Mode       exportd.Mode     `json:"mode,omitempty"`
	Start      time.Time        `json:"start,omitzero"`
	End        time.Time        `json:"end,omitzero"`
	Formats    []exportd.Format `json:"formats"`
	// Cursor is the cursor a change export started from; NextCursor, set
	// once it succeeded, is the one the next change export starts from.
	Cursor         string      `json:"cursor,omitempty"`
	NextCursor     string      `json:"nextCursor,omitempty"`
	Status         string      `json:"status"`
	Progress       progressDoc `json:"progress"`
	QueuePosition  *int        `json:"queuePosition,omitempty"`
	CreatedAt      time.Time   `json:"createdAt"`
	StartedAt      *time.Time  `json:"startedAt,omitempty"`
	CompletedAt    *time.Time  `json:"completedAt,omitempty"`
	AvailableUntil *time.Time  `json:"availableUntil,omitempty"`
	// FileCount counts every file; Files lists the first ones and
	// links.files pages through all of them.
	FileCount int              `json:"fileCount,omitempty"`
	Files     []fileDoc        `json:"files,omitempty"`
	Tally     *exportd.Tally   `json:"tally,omitempty"`
	Error     *exportd.Failure `json:"error,omitempty"`
	// Retry is set while a step is being retried after a failure that
	// may heal.
	Retry *exportd.Retry    `json:"retry,omitempty"`
	Links map[string]string `json:"links"`
}

type progressDoc struct {
	Percent float64 `json:"percent"`
	Rows    int64   `json:"rows"`
	Total   int64   `json:"total"`
}

type fileDoc struct {
	Name   string         `json:"name"`
	Format exportd.Format `json:"format"`
	Rows   int64          `json:"rows"`
	Bytes  int64          `json:"bytes"`
	SHA256 string         `json:"sha256"`
	URL    string         `json:"url"`
	// SignedURL works with a plain GET, no credentials, until the export
	// expires.
	SignedURL string `json:"signedUrl,omitempty"`
}

func (h *handlers) document(r *http.Request, s exportd.State, page *filePage) exportDoc {
	return documentOf(h.baseURL(r), h.signer, s, page)
}

// documentOf builds the native status document; base is the API's
// absolute URL. The webhook renderer shares it, so a webhook carries what
// GET returns. page is the first page of a ready export's files.
func documentOf(apiBase string, signer *exports.Signer, s exportd.State, page *filePage) exportDoc {
	base := apiBase + "/v1/exports/" + s.Spec.ExportID
	d := exportDoc{
		ID: s.Spec.ExportID, MerchantID: s.Spec.MerchantID, Dataset: s.Spec.Dataset, Mode: s.Spec.Mode,
		Start: s.Spec.Start, End: s.Spec.End, Formats: s.Spec.Formats, Status: s.Phase.Status(),
		Cursor: s.Spec.Cursor, NextCursor: s.NextCursor,
		Progress:  progressDoc{Percent: round1(s.Progress.Percent()), Rows: s.Progress.Rows, Total: s.Progress.Total},
		CreatedAt: s.CreatedAt, StartedAt: s.StartedAt, CompletedAt: s.CompletedAt,
		AvailableUntil: s.AvailableUntil, Tally: s.Tally, Error: s.Error, Retry: s.Retry,
		QueuePosition: s.QueuePosition,
		Links:         map[string]string{"self": base},
	}
	if s.Phase == exportd.PhaseReady {
		d.Links["manifest"] = base + "/manifest"
		d.Links["files"] = base + "/files"
		d.FileCount = s.Files
		if s.Progress.Total == 0 {
			d.Progress.Percent = 100
		}
	}
	if page != nil {
		d.Files = fileDocs(base, signer, s, page.files)
		if page.next != "" {
			d.Links["nextFiles"] = base + "/files?" + url.Values{"cursor": {page.next}}.Encode()
		}
	}
	return d
}

// fileDocs describes files of an export for its app, with signed URLs.
func fileDocs(base string, signer *exports.Signer, s exportd.State, files []exportd.FileInfo) []fileDoc {
	out := make([]fileDoc, 0, len(files))
	for _, f := range files {
		fd := fileDoc{Name: f.Name, Format: f.Format, Rows: f.Rows, Bytes: f.Bytes, SHA256: f.SHA256, URL: base + "/files/" + f.Name}
		if signer != nil && s.AvailableUntil != nil {
			fd.SignedURL = fd.URL + "?" + signer.Query(s.Spec.ExportID, f.Name, *s.AvailableUntil)
		}
		out = append(out, fd)
	}
	return out
}

func round1(v float64) float64 { return float64(int64(v*10)) / 10 }

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}
