// Package exports is the one export engine underneath every API dialect:
// create, read, list, cancel and download exports on behalf of an app,
// with tenant isolation, idempotency and limits decided here once. The
// native API and the Clover, Doshii and Elastic Path dialects are thin
// mappings of requests onto a Service and of exportd.State onto their
// status documents.
package exports

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/blob"
	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/starter"
	"github.com/exportd/exportd/webhook"
)

// Refusals are *exportd.Error values whose Code a dialect maps to its
// own status and body (exportd.CodeNotFound, CodeNotReady, CodeGone,
// CodeIdempotencyConflict, CodeOverLimit, CodeOutsideHours); a bad
// request is a *exportd.ValidationError, whose code is
// exportd.CodeInvalidRequest.

// Access is what the engine and its dialects need to know about apps and
// merchants; *postgres.Access implements it. The engine itself calls only
// Installed; each dialect declares the few methods it calls and is given
// this Access at wiring time.
type Access interface {
	AppByAPIKey(ctx context.Context, key string) (postgres.App, error)
	Installed(ctx context.Context, appID, merchantID string) (bool, error)
	// VerifyClientSecret checks a client id and secret in constant time.
	VerifyClientSecret(ctx context.Context, clientID, secret string) (postgres.App, error)
	// InstalledMerchants lists the merchants that installed an app, by id,
	// for dialects whose clients never name a merchant (an Elastic Path
	// store is one merchant).
	InstalledMerchants(ctx context.Context, appID string) ([]string, error)
	// AppByID returns an app with its client secret in the clear, for
	// dialects whose credentials name the app rather than the client.
	AppByID(ctx context.Context, appID string) (postgres.AppCredentials, error)
	// LocationsByClassifier lists a merchant's locations with any of the
	// classifiers, for dialects that filter locations by kind.
	LocationsByClassifier(ctx context.Context, merchantID string, classifiers []string) ([]string, error)
}

// Service is the export engine.
type Service struct {
	Temporal client.Client
	Access   Access
	Store    blob.Store
	// Index lists an export's files without reading its manifest; nil
	// reads manifests.
	Index FileIndex
	// Signer signs download URLs; nil disables signed URLs.
	Signer *Signer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Queue is the admission queue; nil admits without limits.
	Queue Queue
	// QueueLimit refuses new exports while this many wait; 0 means none.
	QueueLimit int
	// Hours are the service hours; the zero value is always open.
	Hours Hours
	// AllowPrivateWebhooks accepts webhook URLs on loopback and private
	// networks (dev); production refuses them.
	AllowPrivateWebhooks bool
	// Cursors opens the cursor of a change export, so that a bad one is
	// refused at once rather than by the export's workflow.
	Cursors exportd.Cursors
	// Schedules keeps schedules of change exports; nil refuses them.
	Schedules ScheduleStore

	cacheOnce sync.Once
	states    *stateCache
	// Logger receives what the engine cannot return to a caller; nil
	// means slog.Default().
	Logger *slog.Logger
}

// Queue is the admission queue as the API sees it; *postgres.Queue
// implements it.
type Queue interface {
	Enqueue(ctx context.Context, exportID, merchantID string, at time.Time, limit int) (bool, int, error)
	Release(ctx context.Context, exportID string, l postgres.Limits) ([]string, error)
	Position(ctx context.Context, exportID string) (int, error)
}

// ServiceHours describes when new exports are accepted, for dialects
// that name the hours in a refusal.
func (s *Service) ServiceHours() string { return s.Hours.String() }

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Create starts an export of spec for app. With an idempotency key the
// export id is derived from app and key: the same key and request return
// the existing export (created is false), the same key with another
// request is an exportd.CodeIdempotencyConflict error.
func (s *Service) Create(ctx context.Context, app postgres.App, spec exportd.Spec, idemKey string) (state exportd.State, created bool, err error) {
	spec.AppID = app.ID
	spec.ExportID = starter.NewID()
	if idemKey != "" {
		if len(idemKey) > 255 {
			return exportd.State{}, false, &exportd.ValidationError{Field: "Idempotency-Key", Reason: "must be at most 255 characters"}
		}
		spec.ExportID = IdempotentID(app.ID, idemKey)
	}
	if err := spec.Normalize(); err != nil {
		return exportd.State{}, false, err
	}
	if err := s.checkWebhook(spec.Webhook); err != nil {
		return exportd.State{}, false, err
	}
	if spec.Cursor != "" {
		if _, err := s.Cursors.Open(spec.Cursor, spec); err != nil {
			return exportd.State{}, false, err
		}
	}
	if err := s.checkMerchant(ctx, app.ID, spec.MerchantID); err != nil {
		return exportd.State{}, false, err
	}
	now := s.now()
	if !s.Hours.Open(now) {
		return exportd.State{}, false, &exportd.Error{Code: exportd.CodeOutsideHours, RetryAfter: s.Hours.Until(now),
			Message: "exports are accepted only during service hours: " + s.Hours.String()}
	}
	if err := s.admit(ctx, spec, now); err != nil {
		return exportd.State{}, false, err
	}
	state, err = starter.Start(ctx, s.Temporal, spec)
	if err != nil && !errors.Is(err, starter.ErrExists) {
		s.unqueue(ctx, spec.ExportID)
	}
	if errors.Is(err, starter.ErrExists) {
		prev, err := starter.Describe(ctx, s.Temporal, spec.ExportID)
		if err != nil {
			return exportd.State{}, false, fmt.Errorf("error reading the export of an idempotency key: %w", err)
		}
		if !SameRequest(prev.Spec, spec) {
			return exportd.State{}, false, exportd.Errorf(exportd.CodeIdempotencyConflict,
				"idempotency key reused with a different request (export %s)", spec.ExportID)
		}
		return prev, false, nil
	}
	if err != nil {
		return exportd.State{}, false, err
	}
	return state, true, nil
}

// checkWebhook refuses webhook URLs that could never be delivered, or that
// point into private networks, at request time rather than at delivery.
func (s *Service) checkWebhook(w *exportd.Webhook) error {
	if w == nil {
		return nil
	}
	if err := webhook.ValidateURL(w.URL, s.AllowPrivateWebhooks); err != nil {
		return &exportd.ValidationError{Field: "callbackUrl", Reason: err.Error()}
	}
	if err := webhook.ValidateHeaders(w.Headers); err != nil {
		return &exportd.ValidationError{Field: "webhook.headers", Reason: err.Error()}
	}
	return nil
}

// admit refuses a new export when the queue is full, and otherwise puts it
// in the queue before its workflow starts, so its position is known from
// the first status read.
func (s *Service) admit(ctx context.Context, spec exportd.Spec, now time.Time) error {
	if s.Queue == nil {
		return nil
	}
	ok, waiting, err := s.Queue.Enqueue(ctx, spec.ExportID, spec.MerchantID, now, s.QueueLimit)
	if err != nil {
		return err
	}
	if !ok {
		return &exportd.Error{Code: exportd.CodeOverLimit, RetryAfter: queueRetryAfter,
			Message: fmt.Sprintf("%d exports are already waiting to run; retry after %s", waiting, queueRetryAfter)}
	}
	return nil
}

// queueRetryAfter is how long a client refused by a full queue is asked
// to wait.
const queueRetryAfter = 30 * time.Second

// unqueueTimeout bounds the compensating release after a failed start.
const unqueueTimeout = 10 * time.Second

// unqueue takes back the queue place of an export whose workflow did not
// start. A start often fails because the client went away or its deadline
// passed, so the release runs on a context the request's end cannot
// cancel. Should it fail too, the queue reaper removes the row.
func (s *Service) unqueue(ctx context.Context, exportID string) {
	if s.Queue == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unqueueTimeout)
	defer cancel()
	if _, err := s.Queue.Release(ctx, exportID, postgres.Limits{}); err != nil {
		s.logger().Error("releasing the queue place of an export that did not start; the queue reaper will remove it",
			"export_id", exportID, "error", err)
	}
}

func (s *Service) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// SameRequest compares what a client asked for, not server-side fields.
func SameRequest(a, b exportd.Spec) bool {
	norm := func(s exportd.Spec) exportd.Spec {
		s.ExportID = ""
		s.Start, s.End = s.Start.UTC(), s.End.UTC()
		if len(s.Locations) == 0 {
			s.Locations = nil
		}
		return s
	}
	a, b = norm(a), norm(b)
	return a.Start.Equal(b.Start) && a.End.Equal(b.End) && reflect.DeepEqual(withoutTimes(a), withoutTimes(b))
}

func withoutTimes(s exportd.Spec) exportd.Spec {
	s.Start, s.End = time.Time{}, time.Time{}
	return s
}

// checkMerchant is exportd.CodeNotFound for a merchant the app has no install for,
// the same answer as for one that does not exist, so tenants cannot probe.
func (s *Service) checkMerchant(ctx context.Context, appID, merchantID string) error {
	ok, err := s.Access.Installed(ctx, appID, merchantID)
	if err != nil {
		return fmt.Errorf("error checking install: %w", err)
	}
	if !ok {
		return exportd.Errorf(exportd.CodeNotFound, "merchant %q not found", merchantID)
	}
	return nil
}

// CheckMerchant is exportd.CodeNotFound unless the merchant installed the app.
func (s *Service) CheckMerchant(ctx context.Context, app postgres.App, merchantID string) error {
	return s.checkMerchant(ctx, app.ID, merchantID)
}

// Get returns an export the app may see; any other is
// exportd.CodeNotFound.
func (s *Service) Get(ctx context.Context, app postgres.App, id string) (exportd.State, error) {
	st, err := s.Lookup(ctx, id)
	if err != nil {
		return exportd.State{}, err
	}
	if !s.visible(ctx, app, st) {
		return exportd.State{}, notFound(id)
	}
	if st.Phase == exportd.PhaseQueued && s.Queue != nil {
		// Fresher than the memo, which changes only when the workflow
		// next tries for a slot.
		if pos, err := s.Queue.Position(ctx, id); err == nil && pos >= 0 {
			st.QueuePosition = &pos
		}
	}
	return st, nil
}

// Lookup returns any export by id, whoever may see it, for a caller that
// has authorized the request otherwise (a signed URL); an export that
// does not exist is exportd.CodeNotFound.
func (s *Service) Lookup(ctx context.Context, id string) (exportd.State, error) {
	if !exportd.ValidID(id) {
		return exportd.State{}, notFound(id)
	}
	st, err := s.describe(ctx, id)
	if errors.Is(err, starter.ErrNotFound) {
		return exportd.State{}, notFound(id)
	}
	return st, err
}

func notFound(id string) *exportd.Error {
	return exportd.Errorf(exportd.CodeNotFound, "export %q not found", id)
}

// visible: an app sees its own exports, and those started outside the API
// (Temporal CLI, Go SDK) for merchants that installed it.
func (s *Service) visible(ctx context.Context, app postgres.App, st exportd.State) bool {
	if st.Spec.AppID != "" {
		return st.Spec.AppID == app.ID
	}
	ok, err := s.Access.Installed(ctx, app.ID, st.Spec.MerchantID)
	return err == nil && ok
}

// Cancel stops a queued or running export, or purges a ready one early.
// It returns the state before the cancel took effect.
func (s *Service) Cancel(ctx context.Context, app postgres.App, id string) (exportd.State, error) {
	st, err := s.Get(ctx, app, id)
	if err != nil {
		return st, err
	}
	if !st.Phase.Final() {
		if err := starter.Cancel(ctx, s.Temporal, id); err != nil {
			return st, err
		}
		s.forget(id)
	}
	return st, nil
}

// Extend moves a ready export's expiry to until, within the maximum
// retention; the workflow caps it.
func (s *Service) Extend(ctx context.Context, app postgres.App, id string, until time.Time) (exportd.State, error) {
	st, err := s.Get(ctx, app, id)
	if err != nil {
		return st, err
	}
	if err := Ready(st); err != nil {
		return st, err
	}
	if err := starter.Extend(ctx, s.Temporal, id, until); err != nil {
		return st, err
	}
	s.forget(id)
	return st, nil
}

// List returns the app's exports of a merchant, newest first.
func (s *Service) List(ctx context.Context, app postgres.App, merchantID string, phase exportd.Phase, limit int) ([]exportd.State, error) {
	if err := s.checkMerchant(ctx, app.ID, merchantID); err != nil {
		return nil, err
	}
	states, _, err := starter.List(ctx, s.Temporal, starter.ListQuery{MerchantID: merchantID, Phase: phase, PageSize: limit})
	if err != nil {
		return nil, err
	}
	out := states[:0]
	for _, st := range states {
		if st.Spec.AppID == "" || st.Spec.AppID == app.ID {
			out = append(out, st)
		}
	}
	return out, nil
}

// Ready is nil for a READY export, and otherwise an exportd.Error coded
// CodeGone for an expired one, CodeNotFound for one that ended without
// files, and CodeNotReady for one still on its way.
func Ready(st exportd.State) error {
	id := st.Spec.ExportID
	switch {
	case st.Phase == exportd.PhaseReady:
		return nil
	case st.Phase == exportd.PhaseExpired:
		return gone(id)
	case st.Phase.Final():
		return exportd.Errorf(exportd.CodeNotFound, "export %q has no files: it %s", id, st.Phase.Status())
	}
	return exportd.Errorf(exportd.CodeNotReady, "export %q has not succeeded yet; files are available once it has", id)
}

func gone(id string) *exportd.Error {
	return exportd.Errorf(exportd.CodeGone, "export %q expired and its files were deleted", id)
}

// Manifest reads a ready export's manifest.
func (s *Service) Manifest(ctx context.Context, exportID string) (exportd.Manifest, error) {
	var m exportd.Manifest
	obj, err := s.Store.Open(ctx, exportID+"/"+exportd.ManifestName)
	if errors.Is(err, blob.ErrNotFound) || errors.Is(err, blob.ErrInvalidKey) {
		return m, gone(exportID)
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

// ServeFile streams a file of an export with Range, ETag (its sha256) and
// Content-Length, through http.ServeContent.
func (s *Service) ServeFile(w http.ResponseWriter, r *http.Request, exportID string, f exportd.FileInfo) error {
	return s.serve(w, r, exportID, f.Name, ContentType(f.Format), f.SHA256)
}

// ServeManifest streams an export's manifest.json.
func (s *Service) ServeManifest(w http.ResponseWriter, r *http.Request, exportID string) error {
	return s.serve(w, r, exportID, exportd.ManifestName, "application/json", "")
}

func (s *Service) serve(w http.ResponseWriter, r *http.Request, exportID, name, ctype, sha string) error {
	key := exportID + "/" + name
	obj, err := s.Store.Open(r.Context(), key)
	if errors.Is(err, blob.ErrNotFound) || errors.Is(err, blob.ErrInvalidKey) {
		return gone(exportID)
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
	if rng := r.Header.Get("Range"); rng != "" {
		if fixed := zeroSuffixRanges(rng, obj.Info().Size); fixed != rng {
			r = r.Clone(r.Context())
			r.Header.Set("Range", fixed)
		}
	}
	http.ServeContent(w, r, "", obj.Info().ModTime, obj)
	return nil
}

// zeroSuffixRanges rewrites suffix ranges of zero bytes ("bytes=-0"),
// which RFC 9110 makes unsatisfiable but http.ServeContent answers with a
// 206 whose Content-Range ends before it starts, into ranges that start
// at the end of the object, which ServeContent drops, or refuses with 416
// when nothing else is asked for.
func zeroSuffixRanges(rng string, size int64) string {
	specs, ok := strings.CutPrefix(rng, "bytes=")
	if !ok {
		return rng
	}
	parts := strings.Split(specs, ",")
	for i, p := range parts {
		// Read as ServeContent reads it: spaces around either side of
		// the dash, and whatever strconv.ParseInt takes ("+0", "00").
		start, end, ok := strings.Cut(p, "-")
		end = strings.Trim(end, " \t")
		if !ok || strings.Trim(start, " \t") != "" || end == "" || end[0] == '-' {
			continue
		}
		if n, err := strconv.ParseInt(end, 10, 64); err == nil && n == 0 {
			parts[i] = strconv.FormatInt(size, 10) + "-"
		}
	}
	return "bytes=" + strings.Join(parts, ",")
}

// ContentType is the media type a format is served with. Compressed
// formats are served as gzip, not with Content-Encoding, so clients get
// the bytes the sha256 was taken over.
func ContentType(f exportd.Format) string {
	switch f {
	case exportd.Parquet:
		return "application/vnd.apache.parquet"
	case exportd.Arrow:
		return "application/vnd.apache.arrow.file"
	}
	if strings.HasSuffix(string(f), "json") {
		return "application/json"
	}
	return "application/gzip"
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// IdempotentID derives the export id of an idempotency key, scoped to the
// app so that two apps' keys never meet.
func IdempotentID(appID, key string) string {
	sum := sha256.Sum256([]byte(appID + "\x00" + key))
	return "k" + strings.ToLower(idEncoding.EncodeToString(sum[:15]))
}
