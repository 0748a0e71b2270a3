package clover

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/exportd/exportd"
)

// RowsPerFile is Clover's documented number of objects per export file.
const RowsPerFile = 1000

// maxMillis is the first millisecond of the year 10000: times beyond it
// have no RFC 3339 form anywhere else in exportd.
const maxMillis = 253402300800000

// millis is an epoch-milliseconds time as Clover's clients send it: a JSON
// number, or a string of digits (Clover's Python example).
type millis struct {
	v   int64
	set bool
}

var errNotMillis = errors.New("not whole epoch milliseconds")

// UnmarshalJSON reads a number or a numeric string; null leaves it unset.
func (m *millis) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// 1.5e12 is a number too; only a whole millisecond is a time.
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != float64(int64(f)) {
			return errNotMillis
		}
		v = int64(f)
	}
	m.v, m.set = v, true
	return nil
}

// createRequest is the body of POST /v3/merchants/{mId}/exports.
type createRequest struct {
	Type      string `json:"type"`
	StartTime millis `json:"startTime"`
	EndTime   millis `json:"endTime"`
}

// parseCreate reads and validates a create request. Unknown fields are
// ignored, as a vendor API that grows fields must let old clients send them.
func (h *handlers) parseCreate(r *http.Request) (exportd.Dataset, time.Time, time.Time, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return "", time.Time{}, time.Time{}, fmt.Errorf("error reading request body: %w", err)
	}
	const example = `{"type": "ORDERS", "startTime": 1554076800000, "endTime": 1556582400000}`
	var req createRequest
	if err := json.Unmarshal(body, &req); err != nil {
		var ue *json.UnmarshalTypeError
		if errors.As(err, &ue) && ue.Field != "" {
			return "", time.Time{}, time.Time{}, badRequest("field %q has the wrong type; the body must be JSON like %s", ue.Field, example)
		}
		if errors.Is(err, errNotMillis) {
			return "", time.Time{}, time.Time{}, badRequest("startTime and endTime must be epoch milliseconds, as numbers or strings of digits")
		}
		return "", time.Time{}, time.Time{}, badRequest("the body must be a JSON object like %s", example)
	}
	var d exportd.Dataset
	switch strings.ToUpper(strings.TrimSpace(req.Type)) {
	case "ORDERS":
		d = exportd.Orders
	case "PAYMENTS":
		d = exportd.Payments
	default:
		return "", time.Time{}, time.Time{}, badRequest("type must be ORDERS or PAYMENTS, not %q", req.Type)
	}
	if !req.StartTime.set || !req.EndTime.set {
		return "", time.Time{}, time.Time{}, badRequest("startTime and endTime are required, in epoch milliseconds")
	}
	for _, v := range []int64{req.StartTime.v, req.EndTime.v} {
		if v < 0 || v >= maxMillis {
			return "", time.Time{}, time.Time{}, badRequest("startTime and endTime must be epoch milliseconds between 0 and %d", int64(maxMillis-1))
		}
	}
	start, end := time.UnixMilli(req.StartTime.v).UTC(), time.UnixMilli(req.EndTime.v).UTC()
	if !end.After(start) {
		return "", time.Time{}, time.Time{}, badRequest("endTime must be after startTime (the window is [startTime, endTime))")
	}
	if end.Sub(start) > h.MaxWindow {
		return "", time.Time{}, time.Time{}, badRequest("the maximum time range is %s; split longer spans into several exports", days(h.MaxWindow))
	}
	return d, start, end, nil
}

func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		if n := d / (24 * time.Hour); n != 1 {
			return fmt.Sprintf("%d days", n)
		}
		return "1 day"
	}
	return d.String()
}

func (h *handlers) createExport(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	d, start, end, err := h.parseCreate(r)
	if err != nil {
		return err
	}
	spec := exportd.Spec{
		MerchantID: r.PathValue("mId"), Dataset: d, Start: start, End: end,
		Formats: []exportd.Format{exportd.CloverJSON}, MaxRowsPerFile: RowsPerFile,
	}
	st, _, err := h.Service.Create(r.Context(), appFrom(r.Context()), spec, "")
	if err != nil {
		return err
	}
	doc, err := h.document(r, st, nil)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, doc)
	return nil
}

func (h *handlers) getExport(w http.ResponseWriter, r *http.Request) error {
	st, err := h.Service.Get(r.Context(), appFrom(r.Context()), r.PathValue("exportId"))
	if err != nil {
		return err
	}
	if !h.ours(st, r.PathValue("mId")) {
		return errNotFound
	}
	doc, err := h.describe(r, st)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, doc)
	return nil
}

// listLimit bounds the exports a list returns; Clover's exports live a day.
const listLimit = 100

func (h *handlers) listExports(w http.ResponseWriter, r *http.Request) error {
	mID := r.PathValue("mId")
	states, err := h.Service.List(r.Context(), appFrom(r.Context()), mID, "", listLimit)
	if err != nil {
		return err
	}
	docs := make([]Export, 0, len(states))
	for _, st := range states {
		if !h.ours(st, mID) {
			continue
		}
		doc, err := h.describe(r, st)
		if err != nil {
			return err
		}
		docs = append(docs, doc)
	}
	writeJSON(w, http.StatusOK, Elements[Export]{Elements: docs})
	return nil
}

// ours: an export belongs to this dialect when it was made for the merchant
// in the path and writes Clover's files.
func (h *handlers) ours(st exportd.State, merchantID string) bool {
	return st.Spec.MerchantID == merchantID && slices.Contains(st.Spec.Formats, exportd.CloverJSON)
}

// describe is the export object, with the files of a DONE export.
func (h *handlers) describe(r *http.Request, st exportd.State) (Export, error) {
	if Status(st.Phase) != StatusDone || !h.available(st) {
		return h.document(r, st, nil)
	}
	m, err := h.Service.Manifest(r.Context(), st.Spec.ExportID)
	if exportd.ErrorCode(err) == exportd.CodeGone {
		// Purged between the describe and now: expired.
		st.Phase = exportd.PhaseExpired
		return h.document(r, st, nil)
	}
	if err != nil {
		return Export{}, err
	}
	return h.document(r, st, &m)
}

// available: a READY export whose availableUntil has passed is about to
// expire, and its signed URLs would not work.
func (h *handlers) available(st exportd.State) bool {
	return st.AvailableUntil != nil && h.Now().Before(*st.AvailableUntil)
}

// The statuses of Clover's export object.
const (
	StatusPending    = "PENDING"
	StatusInProgress = "IN_PROGRESS"
	StatusDone       = "DONE"
	StatusFailed     = "FAILED"
)

// Status is Clover's name for a phase. Clover documents no status for a
// canceled export or for expired files, so both are FAILED: a client that
// waits for DONE must not read missing files as an empty export.
func Status(p exportd.Phase) string {
	switch p {
	case exportd.PhaseQueued:
		return StatusPending
	case exportd.PhaseExporting:
		return StatusInProgress
	case exportd.PhaseReady:
		return StatusDone
	}
	return StatusFailed
}

// Ref is Clover's reference to another object.
type Ref struct {
	ID string `json:"id"`
}

// Elements is Clover's wrapper of every list.
type Elements[T any] struct {
	Elements []T `json:"elements"`
}

// ExportURL is one file of a DONE export.
type ExportURL struct {
	URL    string `json:"url"`
	Export Ref    `json:"export"`
}

// Export is Clover's export object. The field order is that of Clover's
// examples, which position-sensitive clients depend on.
type Export struct {
	ID              string               `json:"id"`
	Type            string               `json:"type"`
	Status          string               `json:"status"`
	PercentComplete int                  `json:"percentComplete"`
	AvailableUntil  *int64               `json:"availableUntil,omitempty"`
	StartTime       int64                `json:"startTime"`
	EndTime         int64                `json:"endTime"`
	CreatedTime     int64                `json:"createdTime"`
	ModifiedTime    int64                `json:"modifiedTime"`
	ExportURLs      *Elements[ExportURL] `json:"exportUrls,omitempty"`
	MerchantRef     Ref                  `json:"merchantRef"`
}

// document renders st; m, the manifest of a DONE export, adds the files.
func (h *handlers) document(r *http.Request, st exportd.State, m *exportd.Manifest) (Export, error) {
	s := st.Spec
	doc := Export{
		ID: s.ExportID, Type: strings.ToUpper(string(s.Dataset)), Status: Status(st.Phase),
		PercentComplete: int(st.Progress.Percent()),
		StartTime:       s.Start.UnixMilli(), EndTime: s.End.UnixMilli(),
		CreatedTime: st.CreatedAt.UnixMilli(), ModifiedTime: modified(st).UnixMilli(),
		MerchantRef: Ref{ID: s.MerchantID},
	}
	if doc.Status == StatusDone && !h.available(st) {
		doc.Status = StatusFailed
	}
	if doc.Status != StatusDone || m == nil {
		return doc, nil
	}
	if h.Signer == nil {
		return Export{}, errors.New("signed download URLs are disabled, so Clover export URLs cannot work")
	}
	until := *st.AvailableUntil
	ms := until.UnixMilli()
	doc.PercentComplete = 100
	doc.AvailableUntil = &ms
	doc.ExportURLs = &Elements[ExportURL]{Elements: []ExportURL{}}
	base := h.baseURL(r) + "/v1/exports/" + url.PathEscape(s.ExportID) + "/files/"
	for _, f := range m.Files {
		if f.Format != exportd.CloverJSON {
			continue
		}
		u := base + url.PathEscape(f.Name) + "?" + h.Signer.Query(s.ExportID, f.Name, until)
		doc.ExportURLs.Elements = append(doc.ExportURLs.Elements, ExportURL{URL: u, Export: Ref{ID: s.ExportID}})
	}
	return doc, nil
}

// modified is the last time the export changed phase that the state
// records.
func modified(st exportd.State) time.Time {
	t := st.CreatedAt
	for _, u := range []*time.Time{st.StartedAt, st.CompletedAt} {
		if u != nil && u.After(t) {
			t = *u
		}
	}
	return t
}
