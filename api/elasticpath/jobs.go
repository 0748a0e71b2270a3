package elasticpath

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"time"

	"github.com/exportd/exportd"
)

// jobTypeOrderExport is the one job type the Exporter service has.
const jobTypeOrderExport = "order_export"

// noResults is Elastic Path's error for an export that matched no orders:
// a failure in this dialect, as Elastic Path's jobs report it, and a
// success with zero rows natively.
const noResults = "No results matched the supplied filter"

// Every job is an orders export to csv.gz in one part: Elastic Path
// serves one file per job, so parts rotate only at the engine's maximum,
// and files are kept for the week Elastic Path keeps a job's.
var jobFormats = []exportd.Format{exportd.CSV}

const (
	jobMaxRowsPerFile = 100_000_000
	jobRetention      = exportd.Duration(exportd.MaxRetention)
)

// jobFileName is the job's file: the first part, named as the engine
// names every part (<dataset>-<part>.<ext>).
var jobFileName = string(exportd.Orders) + "-00000" + exportd.CSV.Ext()

// Job is an Elastic Path job object.
type Job struct {
	ID         string     `json:"id"`
	Type       string     `json:"type"`
	JobType    string     `json:"job_type"`
	Status     string     `json:"status"`
	Error      string     `json:"error"` // empty unless failed; always present for clients that read it unguarded
	Timestamps Timestamps `json:"timestamps"`
	Links      Links      `json:"links"`
	Link       FileLink   `json:"link"`
}

// Timestamps are a job's creation and last change, RFC 3339 in UTC.
type Timestamps struct {
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Links holds the job's own absolute URL.
type Links struct {
	Self string `json:"self"`
}

// FileLink is the public URL of a job's CSV file; empty until it succeeds.
type FileLink struct {
	Href string `json:"href"`
}

// JobResponse is the body of POST /v2/jobs and GET /v2/jobs/{id}.
type JobResponse struct {
	Data Job `json:"data"`
}

// JobList is the body of GET /v2/jobs.
type JobList struct {
	Data []Job `json:"data"`
}

// FileResponse is the body of GET /v2/jobs/{id}/file: href at the top
// level, as the JavaScript SDK reads it, and under data, as the Exporter
// API's OpenAPI document has it.
type FileResponse struct {
	FileLink
	Data FileLink `json:"data"`
}

// createRequest is the body of POST /v2/jobs.
type createRequest struct {
	Data *struct {
		Type    *string `json:"type"`
		JobType string  `json:"job_type"`
		Filter  string  `json:"filter"`
	} `json:"data"`
}

const createShape = `{"data": {"type": "job", "job_type": "order_export", "filter": "ge(created_at,2024-01-01):lt(created_at,2024-02-01)"}}`

// createJob is POST /v2/jobs. The body is JSON whatever the Content-Type:
// Elastic Path's curl examples send none.
func (h *handlers) createJob(w http.ResponseWriter, r *http.Request) error {
	s := sessionFrom(r.Context())
	var req createRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Data == nil {
		return errorf(http.StatusBadRequest, "the body must be %s", createShape)
	}
	if req.Data.Type != nil && *req.Data.Type != "job" {
		return errorf(http.StatusBadRequest, `data.type must be "job", not %q`, *req.Data.Type)
	}
	if req.Data.JobType != jobTypeOrderExport {
		return errorf(http.StatusBadRequest, `data.job_type must be "order_export", the only job type, not %q`, req.Data.JobType)
	}
	f, err := ParseFilter(req.Data.Filter)
	if err != nil {
		return err
	}
	start, end, err := f.Window(h.Now())
	if err != nil {
		return err
	}
	st, _, err := h.Service.Create(r.Context(), s.app, exportd.Spec{
		MerchantID: s.merchant, Dataset: exportd.Orders, Start: start, End: end,
		Formats: jobFormats, MaxRowsPerFile: jobMaxRowsPerFile, Retention: jobRetention,
	}, "")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, JobResponse{Data: h.job(r, st)})
	return nil
}

// listJobs is GET /v2/jobs: the jobs among the newest 100 exports of the
// token's store (from Temporal visibility, so a new job shows in a moment).
func (h *handlers) listJobs(w http.ResponseWriter, r *http.Request) error {
	s := sessionFrom(r.Context())
	states, err := h.Service.List(r.Context(), s.app, s.merchant, "", 100)
	if err != nil {
		return err
	}
	jobs := make([]Job, 0, len(states))
	for _, st := range states {
		if isJob(st.Spec) {
			jobs = append(jobs, h.job(r, st))
		}
	}
	writeJSON(w, http.StatusOK, JobList{Data: jobs})
	return nil
}

// getJob is GET /v2/jobs/{id}.
func (h *handlers) getJob(w http.ResponseWriter, r *http.Request) error {
	st, err := h.lookup(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, JobResponse{Data: h.job(r, st)})
	return nil
}

// getJobFile is GET /v2/jobs/{id}/file: the public link to the CSV file,
// read from the manifest so that a purged file is not offered.
func (h *handlers) getJobFile(w http.ResponseWriter, r *http.Request) error {
	st, err := h.lookup(r)
	if err != nil {
		return err
	}
	noFile := func(status string) error {
		return errorf(http.StatusUnprocessableEntity, "Job has no file to download. Job status: %s", status)
	}
	if status, _ := jobStatus(st); status != "success" {
		return noFile(status)
	}
	m, err := h.Service.Manifest(r.Context(), st.Spec.ExportID)
	if exportd.ErrorCode(err) == exportd.CodeGone {
		return noFile("failed")
	}
	if err != nil {
		return err
	}
	i := slices.IndexFunc(m.Files, func(f exportd.FileInfo) bool { return f.Format == exportd.CSV })
	if i < 0 {
		return fmt.Errorf("export %s has no csv.gz file in its manifest", st.Spec.ExportID)
	}
	href := h.fileURL(r, st, m.Files[i].Name)
	if href == "" {
		return errors.New("signed URLs are not configured (Config.Signer is nil)")
	}
	writeJSON(w, http.StatusOK, FileResponse{FileLink: FileLink{Href: href}, Data: FileLink{Href: href}})
	return nil
}

// lookup returns the job named in the path if the token's store may see
// it; exports that are not jobs of this store are 404 like missing ones.
func (h *handlers) lookup(r *http.Request) (exportd.State, error) {
	s := sessionFrom(r.Context())
	st, err := h.Service.Get(r.Context(), s.app, r.PathValue("id"))
	if err != nil {
		return st, err
	}
	if !isJob(st.Spec) || st.Spec.MerchantID != s.merchant {
		return st, notFound()
	}
	return st, nil
}

// isJob tells a job from the app's other exports by the shape every job
// has, so that GET /v2/jobs lists only what this dialect can describe.
func isJob(s exportd.Spec) bool {
	return s.Dataset == exportd.Orders && slices.Equal(s.Formats, jobFormats) && s.MaxRowsPerFile == jobMaxRowsPerFile
}

// jobStatus maps an export's phase onto Elastic Path's four statuses and
// the error of a failed job.
func jobStatus(st exportd.State) (status, message string) {
	completedEmpty := st.CompletedAt != nil && st.Rows == 0
	switch st.Phase {
	case exportd.PhaseQueued:
		return "pending", ""
	case exportd.PhaseExporting:
		return "started", ""
	case exportd.PhaseReady:
		if completedEmpty {
			return "failed", noResults
		}
		return "success", ""
	case exportd.PhaseExpired:
		if completedEmpty {
			return "failed", noResults
		}
		return "failed", "The job expired and its file was deleted"
	case exportd.PhaseCanceled:
		return "failed", "The job was canceled"
	case exportd.PhaseFailed:
		if st.Error != nil && st.Error.Message != "" {
			return "failed", st.Error.Message
		}
		return "failed", "The job failed"
	}
	return "pending", ""
}

// job renders an export as an Elastic Path job.
func (h *handlers) job(r *http.Request, st exportd.State) Job {
	base := h.baseURL(r)
	status, message := jobStatus(st)
	j := Job{
		ID: st.Spec.ExportID, Type: "job", JobType: jobTypeOrderExport, Status: status, Error: message,
		Timestamps: Timestamps{CreatedAt: st.CreatedAt.UTC(), UpdatedAt: updatedAt(st)},
		Links:      Links{Self: base + "/v2/jobs/" + url.PathEscape(st.Spec.ExportID)},
	}
	if status == "success" {
		j.Link.Href = h.fileURL(r, st, jobFileName)
	}
	return j
}

// fileURL is the public signed URL of a file of a ready export, served by
// the native API until the export expires; empty without a signer.
func (h *handlers) fileURL(r *http.Request, st exportd.State, name string) string {
	if h.Signer == nil || st.AvailableUntil == nil {
		return ""
	}
	id := st.Spec.ExportID
	return h.baseURL(r) + "/v1/exports/" + url.PathEscape(id) + "/files/" + url.PathEscape(name) +
		"?" + h.Signer.Query(id, name, *st.AvailableUntil)
}

// updatedAt is the last time the job changed: creation, start, completion,
// or for an expired one the expiry.
func updatedAt(st exportd.State) time.Time {
	t := st.CreatedAt
	for _, u := range []*time.Time{st.StartedAt, st.CompletedAt} {
		if u != nil && u.After(t) {
			t = *u
		}
	}
	if st.Phase == exportd.PhaseExpired && st.AvailableUntil != nil && st.AvailableUntil.After(t) {
		t = *st.AvailableUntil
	}
	return t.UTC()
}

// decodeJSON reads one JSON object into v, with errors a client can act on.
func decodeJSON(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return fmt.Errorf("error reading the request body: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return errorf(http.StatusBadRequest, "the body is empty; send %s", createShape)
	}
	var te *json.UnmarshalTypeError
	switch err := json.Unmarshal(b, v); {
	case errors.As(err, &te):
		want := "an object"
		if te.Type.Kind() == reflect.String {
			want = "a string"
		}
		return errorf(http.StatusBadRequest, "%s must be %s, not a JSON %s; send %s", te.Field, want, te.Value, createShape)
	case err != nil:
		return errorf(http.StatusBadRequest, "the body is not valid JSON (%v); send %s", err, createShape)
	}
	return nil
}
