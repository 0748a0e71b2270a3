package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/exports"
	"github.com/exportd/exportd/postgres"
)

// scheduleRequest is the body of POST /v1/schedules.
type scheduleRequest struct {
	MerchantID     string           `json:"merchantId"`
	Dataset        exportd.Dataset  `json:"dataset"`
	Formats        []exportd.Format `json:"formats"`
	MaxRowsPerFile int              `json:"maxRowsPerFile"`
	Every          string           `json:"every"`
	Cron           string           `json:"cron"`
	CallbackURL    string           `json:"callbackUrl"`
	Retention      exportd.Duration `json:"retention"`
	Paused         bool             `json:"paused"`
}

// schedulePatch is the body of PATCH /v1/schedules/{id}.
type schedulePatch struct {
	Paused *bool  `json:"paused"`
	Note   string `json:"note"`
}

// scheduleDoc is a schedule's document.
type scheduleDoc struct {
	ID             string           `json:"id"`
	MerchantID     string           `json:"merchantId"`
	Dataset        exportd.Dataset  `json:"dataset"`
	Formats        []exportd.Format `json:"formats"`
	MaxRowsPerFile int              `json:"maxRowsPerFile"`
	Every          string           `json:"every,omitempty"`
	Cron           string           `json:"cron,omitempty"`
	CallbackURL    string           `json:"callbackUrl,omitempty"`
	Retention      exportd.Duration `json:"retention"`
	Paused         bool             `json:"paused"`
	Note           string           `json:"note,omitempty"`
	NextRunAt      *time.Time       `json:"nextRunAt"`
	// Cursor is the chain's cursor: the nextCursor of the last run that
	// succeeded, which the next run starts from; absent until the
	// backfill succeeded.
	Cursor      string    `json:"cursor,omitempty"`
	Running     int       `json:"running"`
	SkippedRuns int       `json:"skippedRuns"`
	CreatedAt   time.Time `json:"createdAt"`
	// Runs are the newest runs, newest first.
	Runs  []runDoc          `json:"runs"`
	Links map[string]string `json:"links"`
}

// runDoc is one run of a schedule.
type runDoc struct {
	ExportID    string    `json:"exportId"`
	ScheduledAt time.Time `json:"scheduledAt"`
	// Cursor is the cursor the run's export started from (absent: the
	// backfill); NextCursor the one it ended with.
	Cursor     string            `json:"cursor,omitempty"`
	NextCursor string            `json:"nextCursor,omitempty"`
	Status     string            `json:"status"`
	Rows       int64             `json:"rows"`
	Chained    bool              `json:"chained"`
	Error      *exportd.Failure  `json:"error,omitempty"`
	StartedAt  time.Time         `json:"startedAt"`
	SettledAt  *time.Time        `json:"settledAt,omitempty"`
	Links      map[string]string `json:"links"`
}

func (h *handlers) createSchedule(w http.ResponseWriter, r *http.Request) error {
	var req scheduleRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.MerchantID == "" {
		return &apiError{code: codeInvalidRequest, field: "merchantId", detail: "merchantId is required"}
	}
	sr := exports.ScheduleRequest{Every: req.Every, Cron: req.Cron, Paused: req.Paused, Spec: exportd.Spec{
		MerchantID: req.MerchantID, Dataset: req.Dataset, Formats: req.Formats,
		MaxRowsPerFile: req.MaxRowsPerFile, Retention: req.Retention,
	}}
	if req.CallbackURL != "" {
		sr.Spec.Webhook = &exportd.Webhook{URL: req.CallbackURL}
	}
	st, err := h.engine.CreateSchedule(r.Context(), appFrom(r.Context()), sr)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/schedules/"+st.Schedule.ID)
	return writeJSON(w, http.StatusCreated, h.scheduleDocument(r, st))
}

func (h *handlers) listSchedules(w http.ResponseWriter, r *http.Request) error {
	states, err := h.engine.ListSchedules(r.Context(), appFrom(r.Context()))
	if err != nil {
		return err
	}
	docs := make([]scheduleDoc, 0, len(states))
	for _, st := range states {
		docs = append(docs, h.scheduleDocument(r, st))
	}
	return writeJSON(w, http.StatusOK, map[string]any{"schedules": docs})
}

// getSchedule returns a schedule with its newest runs: ?runs= of them,
// 10 unless asked, at most exports.MaxRunsShown.
func (h *handlers) getSchedule(w http.ResponseWriter, r *http.Request) error {
	runs := 10
	if v := r.URL.Query().Get("runs"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > exports.MaxRunsShown {
			return &apiError{code: codeInvalidRequest, field: "runs", detail: "runs must be a number from 0 to " + strconv.Itoa(exports.MaxRunsShown)}
		}
		runs = n
	}
	st, err := h.engine.Schedule(r.Context(), appFrom(r.Context()), r.PathValue("id"), runs)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, h.scheduleDocument(r, st))
}

func (h *handlers) patchSchedule(w http.ResponseWriter, r *http.Request) error {
	var req schedulePatch
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Paused == nil {
		return &apiError{code: codeInvalidRequest, field: "paused", detail: "paused (true or false) is required"}
	}
	if len(req.Note) > 1000 {
		return &apiError{code: codeInvalidRequest, field: "note", detail: "note must be at most 1000 characters"}
	}
	st, err := h.engine.PauseSchedule(r.Context(), appFrom(r.Context()), r.PathValue("id"), *req.Paused, req.Note)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, h.scheduleDocument(r, st))
}

func (h *handlers) deleteSchedule(w http.ResponseWriter, r *http.Request) error {
	if err := h.engine.DeleteSchedule(r.Context(), appFrom(r.Context()), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handlers) scheduleDocument(r *http.Request, st exports.ScheduleState) scheduleDoc {
	base := h.baseURL(r)
	sc := st.Schedule
	d := scheduleDoc{
		ID: sc.ID, MerchantID: sc.MerchantID, Dataset: sc.Dataset, Formats: sc.Spec.Formats,
		MaxRowsPerFile: sc.Spec.MaxRowsPerFile, Every: sc.Every, Cron: sc.Cron, Retention: sc.Spec.Retention,
		Paused: st.Paused, Note: st.Note, NextRunAt: st.NextRunAt, Cursor: sc.Cursor,
		Running: st.Running, SkippedRuns: st.SkippedRuns, CreatedAt: sc.CreatedAt,
		Runs:  make([]runDoc, 0, len(st.Runs)),
		Links: map[string]string{"self": base + "/v1/schedules/" + sc.ID},
	}
	if sc.Spec.Webhook != nil {
		d.CallbackURL = sc.Spec.Webhook.URL
	}
	for _, run := range st.Runs {
		d.Runs = append(d.Runs, runDocument(base, run))
	}
	return d
}

func runDocument(base string, run postgres.ScheduleRun) runDoc {
	status := "running"
	if run.SettledAt != nil {
		status = run.Phase.Status()
	}
	return runDoc{
		ExportID: run.ExportID, ScheduledAt: run.ScheduledAt.UTC(), Cursor: run.CursorFrom, NextCursor: run.NextCursor,
		Status: status, Rows: run.Rows, Chained: run.Chained, Error: run.Error, StartedAt: run.StartedAt.UTC(), SettledAt: run.SettledAt,
		Links: map[string]string{"export": base + "/v1/exports/" + run.ExportID},
	}
}
