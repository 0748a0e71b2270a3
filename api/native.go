package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/blob"
	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/starter"
)

// authed resolves the API key to an app before calling next.
func (h *handlers) authed(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		key := r.Header.Get("X-API-Key")
		if auth := r.Header.Get("Authorization"); key == "" && auth != "" {
			scheme, token, ok := strings.Cut(auth, " ")
			if ok && strings.EqualFold(scheme, "Bearer") {
				key = strings.TrimSpace(token)
			}
		}
		if key == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="exportd"`)
			return errorf(codeUnauthorized, "send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
		}
		app, err := h.Access.AppByAPIKey(r.Context(), key)
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
	Start          string           `json:"start"`
	End            string           `json:"end"`
	Formats        []exportd.Format `json:"formats"`
	MaxRowsPerFile int              `json:"maxRowsPerFile"`
	Locations      []string         `json:"locations"`
	CallbackURL    string           `json:"callbackUrl"`
	Retention      exportd.Duration `json:"retention"`
}

// spec validates the request into an export spec.
func (c createRequest) spec(appID, exportID string) (exportd.Spec, error) {
	if c.MerchantID == "" {
		return exportd.Spec{}, &apiError{code: codeInvalidRequest, field: "merchantId", detail: "merchantId is required"}
	}
	start, err := parseTime("start", c.Start)
	if err != nil {
		return exportd.Spec{}, err
	}
	end, err := parseTime("end", c.End)
	if err != nil {
		return exportd.Spec{}, err
	}
	if len(c.Locations) > 1000 {
		return exportd.Spec{}, &apiError{code: codeInvalidRequest, field: "locations", detail: "at most 1000 locations"}
	}
	s := exportd.Spec{
		ExportID: exportID, AppID: appID, MerchantID: c.MerchantID, Dataset: c.Dataset,
		Start: start, End: end, Formats: c.Formats, MaxRowsPerFile: c.MaxRowsPerFile,
		Locations: c.Locations, CallbackURL: c.CallbackURL, Retention: c.Retention,
	}
	if err := s.Normalize(); err != nil {
		return exportd.Spec{}, err
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
	if t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, &apiError{code: codeInvalidRequest, field: field, detail: field + " must be between 1970 and 9999"}
	}
	return t.UTC(), nil
}

func (h *handlers) createExport(w http.ResponseWriter, r *http.Request) error {
	app := appFrom(r.Context())
	var req createRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	exportID := newExportID()
	idemKey := r.Header.Get("Idempotency-Key")
	if idemKey != "" {
		if len(idemKey) > 255 {
			return &apiError{code: codeInvalidRequest, field: "Idempotency-Key", detail: "Idempotency-Key must be at most 255 characters"}
		}
		exportID = idempotentExportID(app.ID, idemKey)
	}
	spec, err := req.spec(app.ID, exportID)
	if err != nil {
		return err
	}
	if err := h.checkMerchant(r, app.ID, spec.MerchantID); err != nil {
		return err
	}
	state, err := starter.Start(r.Context(), h.Temporal, spec)
	if errors.Is(err, starter.ErrExists) {
		// The same key again: the same export if the request is the same.
		prev, derr := starter.Describe(r.Context(), h.Temporal, exportID)
		if derr != nil {
			return fmt.Errorf("error reading the export of an idempotency key: %w", derr)
		}
		if !sameRequest(prev.Spec, spec) {
			return errorf(codeIdempotency, "Idempotency-Key %q was used for a different request (export %s)", idemKey, exportID)
		}
		w.Header().Set("Location", "/v1/exports/"+exportID)
		return writeJSON(w, http.StatusOK, h.document(r, prev))
	}
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/exports/"+exportID)
	return writeJSON(w, http.StatusAccepted, h.document(r, state))
}

// sameRequest compares what the client asked for, not server-side fields.
func sameRequest(a, b exportd.Spec) bool {
	a.ExportID, b.ExportID = "", ""
	return a.Start.Equal(b.Start) && a.End.Equal(b.End) &&
		reflect.DeepEqual(withoutTimes(a), withoutTimes(b))
}

func withoutTimes(s exportd.Spec) exportd.Spec {
	s.Start, s.End = time.Time{}, time.Time{}
	if len(s.Locations) == 0 {
		s.Locations = nil
	}
	return s
}

// checkMerchant answers 404 for a merchant the app has no install for,
// the same answer as for one that does not exist.
func (h *handlers) checkMerchant(r *http.Request, appID, merchantID string) error {
	ok, err := h.Access.Installed(r.Context(), appID, merchantID)
	if err != nil {
		return fmt.Errorf("error checking install: %w", err)
	}
	if !ok {
		return &apiError{code: codeNotFound, field: "merchantId", detail: fmt.Sprintf("merchant %q not found", merchantID)}
	}
	return nil
}

// export loads an export the calling app may see; any other is not found.
func (h *handlers) export(r *http.Request) (exportd.State, error) {
	id := r.PathValue("id")
	notFound := errorf(codeNotFound, "export %q not found", id)
	if !blob.ValidKey(id) || strings.Contains(id, "/") || len(id) > 64 {
		return exportd.State{}, notFound
	}
	s, err := starter.Describe(r.Context(), h.Temporal, id)
	if errors.Is(err, starter.ErrNotFound) {
		return exportd.State{}, notFound
	}
	if err != nil {
		return exportd.State{}, err
	}
	app := appFrom(r.Context())
	if s.Spec.AppID != app.ID {
		// Exports started outside the API (temporal CLI, Go SDK) belong to
		// every app the merchant installed.
		if s.Spec.AppID != "" {
			return exportd.State{}, notFound
		}
		if ok, err := h.Access.Installed(r.Context(), app.ID, s.Spec.MerchantID); err != nil || !ok {
			return exportd.State{}, notFound
		}
	}
	return s, nil
}

func (h *handlers) getExport(w http.ResponseWriter, r *http.Request) error {
	s, err := h.export(r)
	if err != nil {
		return err
	}
	doc := h.document(r, s)
	if s.Phase == exportd.PhaseReady {
		m, err := h.manifest(r, s.Spec.ExportID)
		if err != nil {
			return err
		}
		doc.Files = h.fileDocs(r, s.Spec.ExportID, m)
	}
	return writeJSON(w, http.StatusOK, doc)
}

func (h *handlers) deleteExport(w http.ResponseWriter, r *http.Request) error {
	s, err := h.export(r)
	if err != nil {
		return err
	}
	if !s.Phase.Final() {
		if err := starter.Cancel(r.Context(), h.Temporal, s.Spec.ExportID); err != nil {
			return err
		}
		return writeJSON(w, http.StatusAccepted, h.document(r, s))
	}
	return writeJSON(w, http.StatusOK, h.document(r, s))
}

func (h *handlers) listExports(w http.ResponseWriter, r *http.Request) error {
	app := appFrom(r.Context())
	q := r.URL.Query()
	merchant := q.Get("merchantId")
	if merchant == "" {
		return &apiError{code: codeInvalidRequest, field: "merchantId", detail: "merchantId is required"}
	}
	if err := h.checkMerchant(r, app.ID, merchant); err != nil {
		return err
	}
	lq := starter.ListQuery{MerchantID: merchant, PageSize: 100}
	if st := q.Get("status"); st != "" {
		p, ok := phaseOfStatus(st)
		if !ok {
			return &apiError{code: codeInvalidRequest, field: "status", detail: "status must be one of queued, running, succeeded, failed, canceled, expired"}
		}
		lq.Phase = p
	}
	if ps := q.Get("limit"); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 1 || n > 1000 {
			return &apiError{code: codeInvalidRequest, field: "limit", detail: "limit must be a number from 1 to 1000"}
		}
		lq.PageSize = n
	}
	states, _, err := starter.List(r.Context(), h.Temporal, lq)
	if err != nil {
		return err
	}
	docs := make([]exportDoc, 0, len(states))
	for _, s := range states {
		if s.Spec.AppID == "" || s.Spec.AppID == app.ID {
			docs = append(docs, h.document(r, s))
		}
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
	s, err := h.export(r)
	if err != nil {
		return err
	}
	if err := readyOrError(s); err != nil {
		return err
	}
	return h.serveObject(w, r, s.Spec.ExportID+"/"+exportd.ManifestName, "application/json", "")
}

func (h *handlers) getFile(w http.ResponseWriter, r *http.Request) error {
	s, err := h.export(r)
	if err != nil {
		return err
	}
	if err := readyOrError(s); err != nil {
		return err
	}
	name := r.PathValue("name")
	m, err := h.manifest(r, s.Spec.ExportID)
	if err != nil {
		return err
	}
	// Only names the manifest lists reach the store.
	for _, f := range m.Files {
		if f.Name == name {
			return h.serveObject(w, r, s.Spec.ExportID+"/"+f.Name, contentType(f.Format), f.SHA256)
		}
	}
	return errorf(codeNotFound, "export %s has no file %q", s.Spec.ExportID, name)
}

func readyOrError(s exportd.State) error {
	switch {
	case s.Phase == exportd.PhaseReady:
		return nil
	case s.Phase == exportd.PhaseExpired:
		return errorf(codeGone, "export %s expired and its files were deleted", s.Spec.ExportID)
	case s.Phase.Final():
		return errorf(codeNotFound, "export %s is %s and has no files", s.Spec.ExportID, s.Phase.Status())
	}
	return errorf(codeNotReady, "export %s is %s; files are available once it has succeeded", s.Spec.ExportID, s.Phase.Status())
}

func (h *handlers) manifest(r *http.Request, exportID string) (exportd.Manifest, error) {
	var m exportd.Manifest
	obj, err := h.Store.Open(r.Context(), exportID+"/"+exportd.ManifestName)
	if errors.Is(err, blob.ErrNotFound) {
		return m, errorf(codeGone, "export %s has no files any more", exportID)
	}
	if err != nil {
		return m, fmt.Errorf("error opening manifest: %w", err)
	}
	defer obj.Close()
	if err := json.NewDecoder(obj).Decode(&m); err != nil {
		return m, fmt.Errorf("error reading manifest: %w", err)
	}
	return m, nil
}

// serveObject streams a stored object with Range, ETag (the sha256 when
// known) and Content-Length handled by http.ServeContent.
func (h *handlers) serveObject(w http.ResponseWriter, r *http.Request, key, ctype, sha string) error {
	obj, err := h.Store.Open(r.Context(), key)
	if errors.Is(err, blob.ErrNotFound) {
		return errorf(codeGone, "the file is no longer available")
	}
	if err != nil {
		return fmt.Errorf("error opening %s: %w", key, err)
	}
	defer obj.Close()
	w.Header().Set("Content-Type", ctype)
	if sha != "" {
		w.Header().Set("ETag", `"`+sha+`"`)
	}
	w.Header().Set("Cache-Control", "private, max-age=0")
	info := obj.Info()
	http.ServeContent(w, r, "", info.ModTime, obj)
	return nil
}

func contentType(f exportd.Format) string {
	switch f {
	case exportd.Parquet:
		return "application/vnd.apache.parquet"
	case exportd.Arrow:
		return "application/vnd.apache.arrow.file"
	}
	return "application/gzip"
}

// exportDoc is the native status document.
type exportDoc struct {
	ID             string            `json:"id"`
	MerchantID     string            `json:"merchantId"`
	Dataset        exportd.Dataset   `json:"dataset"`
	Start          time.Time         `json:"start"`
	End            time.Time         `json:"end"`
	Formats        []exportd.Format  `json:"formats"`
	Status         string            `json:"status"`
	Progress       progressDoc       `json:"progress"`
	CreatedAt      time.Time         `json:"createdAt"`
	StartedAt      *time.Time        `json:"startedAt,omitempty"`
	CompletedAt    *time.Time        `json:"completedAt,omitempty"`
	AvailableUntil *time.Time        `json:"availableUntil,omitempty"`
	Files          []fileDoc         `json:"files,omitempty"`
	Tally          *exportd.Tally    `json:"tally,omitempty"`
	Error          *exportd.Failure  `json:"error,omitempty"`
	Links          map[string]string `json:"links"`
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
}

func (h *handlers) document(r *http.Request, s exportd.State) exportDoc {
	base := h.baseURL(r) + "/v1/exports/" + s.Spec.ExportID
	d := exportDoc{
		ID: s.Spec.ExportID, MerchantID: s.Spec.MerchantID, Dataset: s.Spec.Dataset,
		Start: s.Spec.Start, End: s.Spec.End, Formats: s.Spec.Formats, Status: s.Phase.Status(),
		Progress:  progressDoc{Percent: round1(s.Progress.Percent()), Rows: s.Progress.Rows, Total: s.Progress.Total},
		CreatedAt: s.CreatedAt, StartedAt: s.StartedAt, CompletedAt: s.CompletedAt,
		AvailableUntil: s.AvailableUntil, Tally: s.Tally, Error: s.Error,
		Links: map[string]string{"self": base},
	}
	if s.Phase == exportd.PhaseReady {
		d.Links["manifest"] = base + "/manifest"
		if s.Progress.Total == 0 {
			d.Progress.Percent = 100
		}
	}
	return d
}

func (h *handlers) fileDocs(r *http.Request, exportID string, m exportd.Manifest) []fileDoc {
	base := h.baseURL(r) + "/v1/exports/" + exportID + "/files/"
	out := make([]fileDoc, 0, len(m.Files))
	for _, f := range m.Files {
		out = append(out, fileDoc{Name: f.Name, Format: f.Format, Rows: f.Rows, Bytes: f.Bytes, SHA256: f.SHA256, URL: base + f.Name})
	}
	return out
}

func round1(v float64) float64 { return float64(int64(v*10)) / 10 }

// newExportID returns a random export id: 20 base32 characters.
func newExportID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "x" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// idempotentExportID derives the export id of an Idempotency-Key, scoped to
// the app so two apps' keys never meet.
func idempotentExportID(appID, key string) string {
	sum := sha256.Sum256([]byte(appID + "\x00" + key))
	return "k" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:15]))
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}
