package doshii

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/exportd/exportd"
)

// CreateRequest is the body of POST /partner/v3/data/{dataSet}, as
// Doshii's SDK sends it. Unknown fields are ignored, as a vendor API
// evolving under its clients would.
type CreateRequest struct {
	// DoshiiID names the merchant whose orders are requested.
	DoshiiID string `json:"doshiiId"`
	// Webhook is POSTed the status document when the request completes
	// or fails; optional here, so that polling clients need none.
	Webhook *WebhookRequest `json:"webhook"`
	// MimeType of the files; only application/json is produced.
	MimeType string `json:"mimeType"`
	// FileSize is the largest file wanted, in kilobytes (compressed),
	// as the status document's file size is.
	FileSize json.Number `json:"fileSize"`
	// Classifiers keep the merchant's locations of these kinds only.
	Classifiers []string `json:"classifiers"`
	// Locations keep these locations only.
	Locations []string `json:"locations"`
	// SortBy must be created ASC, the order every export is written in.
	SortBy *SortBy `json:"sortBy"`
	// Range is the half-open window [start, end) of order creation times.
	Range *Range `json:"range"`
}

// WebhookRequest is where to announce the request's end.
type WebhookRequest struct {
	URL string `json:"url"`
	// Headers are sent with the webhook as given.
	Headers map[string]string `json:"headers"`
}

// SortBy is the requested order of the records.
type SortBy struct {
	Property string `json:"property"`
	Method   string `json:"method"`
}

// Range is a window in unix seconds.
type Range struct {
	Start json.Number `json:"start"`
	End   json.Number `json:"end"`
}

// Limits of a request body's lists, so that one request cannot make a
// query or a workflow input of unbounded size.
const (
	maxLocations   = 1000
	maxClassifiers = 100
	maxHeaders     = 50
)

// BytesPerOrder estimates the compressed size of one order in a
// doshii-json.gzip file, to turn fileSize into rows per file: about 175
// bytes were measured on random test orders of 2-3 items and 1-3
// transactions, about 125 on the seeded demo data. The margin keeps files
// under the requested size, typically at 60-90% of it.
const BytesPerOrder = 200

// maxUnix is 9999-12-31T23:59:59Z, the last second a window may name.
const maxUnix = 253402300799

// decodeCreate reads the JSON body of a create request, whatever its
// Content-Type, turning decoder errors into messages that name the field.
func decodeCreate(r *http.Request) (CreateRequest, error) {
	var req CreateRequest
	dec := json.NewDecoder(r.Body)
	err := dec.Decode(&req)
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		if dec.More() {
			return req, invalid("body", "the body must hold exactly one JSON object")
		}
		return req, nil
	case errors.As(err, &mbe):
		return req, err
	case errors.Is(err, io.EOF):
		return req, invalid("body", "the request body is empty; send a JSON object")
	case errors.As(err, &te):
		return req, invalid(te.Field, fmt.Sprintf("must be %s, not a JSON %s", kind(te.Type.String()), te.Value))
	case errors.As(err, &se):
		return req, invalid("body", fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se))
	case strings.Contains(err.Error(), "json.Number"), strings.Contains(err.Error(), "invalid number literal"):
		return req, invalid("body", "range.start, range.end and fileSize must be numbers (unix seconds for the range)")
	}
	return req, invalid("body", fmt.Sprintf("invalid JSON body: %v", err))
}

func kind(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map"), strings.Contains(goType, "doshii."):
		return "an object"
	case goType == "json.Number":
		return "a number"
	}
	return "a " + goType
}

// spec validates the request into an export spec; the engine fills the
// ids and checks the rest.
func (c CreateRequest) spec() (exportd.Spec, error) {
	s := exportd.Spec{Dataset: exportd.Orders, Formats: []exportd.Format{exportd.DoshiiJSON}}
	if c.DoshiiID == "" || len(c.DoshiiID) > 255 {
		return s, invalid("doshiiId", "doshiiId is required: the id of the merchant whose orders are requested")
	}
	s.MerchantID = c.DoshiiID
	var err error
	if s.Start, s.End, err = c.Range.window(); err != nil {
		return s, err
	}
	if err := checkMimeType(c.MimeType); err != nil {
		return s, err
	}
	if s.MaxRowsPerFile, err = rowsPerFile(c.FileSize); err != nil {
		return s, err
	}
	if err := c.SortBy.check(); err != nil {
		return s, err
	}
	if s.Locations, err = cleanList("locations", c.Locations, maxLocations, 255); err != nil {
		return s, err
	}
	if _, err := cleanList("classifiers", c.Classifiers, maxClassifiers, 100); err != nil {
		return s, err
	}
	if s.Webhook, err = c.Webhook.webhook(); err != nil {
		return s, err
	}
	return s, nil
}

// window reads the range as the half-open window [start, end).
func (r *Range) window() (time.Time, time.Time, error) {
	if r == nil || r.Start == "" || r.End == "" {
		return time.Time{}, time.Time{}, invalid("range", "range {start, end} is required, in unix seconds")
	}
	start, err := unixSeconds("range.start", r.Start)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	end, err := unixSeconds("range.end", r.End)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	if end <= start {
		return time.Time{}, time.Time{}, invalid("range.end", "range.end must be after range.start (the window is [start, end))")
	}
	return time.Unix(start, 0).UTC(), time.Unix(end, 0).UTC(), nil
}

// whole reads a JSON number that is a whole number: 1.6e9 and
// 1606780800.0 are, as some encoders write integers.
func whole(n json.Number) (int64, bool) {
	if v, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return v, true
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}

func unixSeconds(field string, n json.Number) (int64, error) {
	v, ok := whole(n)
	if !ok {
		return 0, invalid(field, fmt.Sprintf("%s must be whole unix seconds, not %s", field, n))
	}
	if v < 0 || v > maxUnix {
		return 0, invalid(field, fmt.Sprintf("%s must be unix seconds between 0 and %d", field, int64(maxUnix)))
	}
	return v, nil
}

// checkMimeType accepts application/json, the only type of file produced
// (a gzip-compressed JSON array), with or without parameters.
func checkMimeType(v string) error {
	if v == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(v)
	if err != nil || mt != "application/json" {
		return invalid("mimeType", fmt.Sprintf("mimeType %q is not supported; the supported value is \"application/json\"", v))
	}
	return nil
}

// rowsPerFile turns a file size in kilobytes into the engine's part size
// by BytesPerOrder; none means the engine's default.
func rowsPerFile(n json.Number) (int, error) {
	if n == "" {
		return 0, nil
	}
	kb, ok := whole(n)
	if !ok || kb < 0 {
		return 0, invalid("fileSize", fmt.Sprintf("fileSize must be a whole number of kilobytes, not %s", n))
	}
	if kb == 0 {
		return 0, nil
	}
	if kb > math.MaxInt64/1024 {
		kb = math.MaxInt64 / 1024
	}
	return int(min(max(1, kb*1024/BytesPerOrder), 100_000_000)), nil
}

// check accepts created ASC (the default), the order (created_at, id) in
// which every export is paged; other orders would need a sort over the
// whole window, which keyset paging exists to avoid, so they are refused
// rather than silently ignored.
func (s *SortBy) check() error {
	if s == nil {
		return nil
	}
	prop, method := strings.ToLower(s.Property), strings.ToUpper(s.Method)
	if !slices.Contains([]string{"", "created", "updated", "id"}, prop) {
		return invalid("sortBy.property", fmt.Sprintf("sortBy.property %q must be one of created, updated, id", s.Property))
	}
	if method != "" && method != "ASC" && method != "DESC" {
		return invalid("sortBy.method", fmt.Sprintf("sortBy.method %q must be ASC or DESC", s.Method))
	}
	if (prop != "" && prop != "created") || method == "DESC" {
		return invalid("sortBy", fmt.Sprintf("only sortBy {property: created, method: ASC} is supported: files are always in order of creation; not %s %s", s.Property, s.Method))
	}
	return nil
}

// cleanList checks a list of ids, drops duplicates and sorts it, so that
// the same request always makes the same spec.
func cleanList(field string, vs []string, maxN, maxLen int) ([]string, error) {
	if len(vs) > maxN {
		return nil, invalid(field, fmt.Sprintf("%s may hold at most %d entries", field, maxN))
	}
	for _, v := range vs {
		if v == "" || len(v) > maxLen {
			return nil, invalid(field, fmt.Sprintf("%s entries must be 1 to %d characters", field, maxLen))
		}
	}
	out := slices.Clone(vs)
	slices.Sort(out)
	return slices.Compact(out), nil
}

// reservedHeaders are set by the webhook delivery itself: the signature
// (Standard Webhooks) and the message framing.
var reservedHeaders = []string{
	"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "keep-alive",
	"proxy-authorization", "proxy-connection", "webhook-id", "webhook-timestamp", "webhook-signature",
}

// webhook validates the webhook into the engine's form. Whether the URL
// may be reached (no loopback or private addresses) is decided by the
// engine for literal addresses and by the delivery, when it connects,
// for names.
func (w *WebhookRequest) webhook() (*exportd.Webhook, error) {
	if w == nil || (w.URL == "" && len(w.Headers) == 0) {
		return nil, nil
	}
	u, err := url.Parse(w.URL)
	if err != nil || len(w.URL) > 2048 || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, invalid("webhook.url", "webhook.url must be an absolute http or https URL of at most 2048 characters, without credentials")
	}
	if len(w.Headers) > maxHeaders {
		return nil, invalid("webhook.headers", fmt.Sprintf("webhook.headers may hold at most %d headers", maxHeaders))
	}
	var headers map[string]string
	for k, v := range w.Headers {
		if !token(k) || slices.Contains(reservedHeaders, strings.ToLower(k)) {
			return nil, invalid("webhook.headers", fmt.Sprintf("%q cannot be a webhook header", k))
		}
		if len(v) > 4096 || strings.ContainsAny(v, "\r\n\x00") {
			return nil, invalid("webhook.headers", fmt.Sprintf("the value of header %q must be one line of at most 4096 bytes", k))
		}
		if headers == nil {
			headers = make(map[string]string, len(w.Headers))
		}
		headers[k] = v
	}
	return &exportd.Webhook{URL: w.URL, Headers: headers, Dialect: Dialect}, nil
}

// Dialect names this dialect in exportd.Webhook, so the delivery sends
// StatusDocument.
const Dialect = "doshii"

// token reports whether s is an HTTP field name (RFC 9110 token).
func token(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
