package doshii_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/exportd/exportd/devenv/devtest"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// This file is a Doshii bulk data client written from Doshii's public
// documentation, run against the real `exportd dev` binary as e2e/ does,
// its results checked against SQL.

// devInfo is dev.json.
type devInfo = devtest.Info

// startDev runs the real `exportd dev`, as users do; see devtest.Start.
func startDev(t *testing.T, args ...string) devInfo { return devtest.Start(t, args...) }

// client authenticates as Doshii's Authorisation page says: X-API-KEY is
// the hex HMAC-SHA256 of the client id keyed by the client secret, ':'
// and the app id; the bearer token an HS256 JWT of {clientId, timestamp}
// signed with the client secret.
type client struct {
	base                    string // .../partner/v3
	appID, clientID, secret string
	tokenAt                 func() time.Time
}

func (c *client) apiKey() string {
	m := hmac.New(sha256.New, []byte(c.secret))
	m.Write([]byte(c.clientID))
	return hex.EncodeToString(m.Sum(nil)) + ":" + c.appID
}

func (c *client) jwt() string {
	at := time.Now()
	if c.tokenAt != nil {
		at = c.tokenAt()
	}
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(map[string]string{"alg": "HS256", "typ": "JWT"}) + "." +
		enc(map[string]any{"clientId": c.clientID, "timestamp": at.Unix()})
	m := hmac.New(sha256.New, []byte(c.secret))
	m.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// do sends a request, authenticated unless c is nil, and returns the
// status and body.
func (c *client) do(t *testing.T, method, url string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if c != nil {
		req.Header.Set("X-API-KEY", c.apiKey())
		req.Header.Set("Authorization", "Bearer "+c.jwt())
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// statusDoc is the status document as Doshii documents it.
type statusDoc struct {
	RequestID          string `json:"requestId"`
	RequestCreatedAt   int64  `json:"requestCreatedAt"`
	Status             string `json:"status"`
	RequestCompletedAt int64  `json:"requestCompletedAt"`
	Files              []struct {
		URI     string `json:"uri"`
		Size    int64  `json:"size"`
		Expires int64  `json:"expires"`
	} `json:"files"`
	Tally struct {
		Locations    int   `json:"locations"`
		Orders       int64 `json:"orders"`
		Transactions int64 `json:"transactions"`
		Amount       int64 `json:"amount"`
	} `json:"tally"`
}

type errorDoc struct {
	Message   string `json:"message"`
	ErrorCode string `json:"errorCode"`
}

// order is the part of a Doshii order the test checks.
type order struct {
	ID           string `json:"id"`
	LocationID   string `json:"locationId"`
	CreatedAt    string `json:"createdAt"`
	TotalAmount  int64  `json:"totalAmount"`
	Transactions []struct {
		Amount int64 `json:"amount"`
	} `json:"transactions"`
}

func (c *client) create(t *testing.T, body map[string]any) string {
	t.Helper()
	status, b := c.do(t, http.MethodPost, c.base+"/data/orders", body)
	require.Equal(t, http.StatusOK, status, "%s", b)
	var created statusDoc
	require.NoError(t, json.Unmarshal(b, &created))
	require.NotEmpty(t, created.RequestID)
	require.Equal(t, "pending", created.Status)
	require.InDelta(t, time.Now().Unix(), created.RequestCreatedAt, 60)
	return created.RequestID
}

// wait polls a request until it ends and returns its document and the
// statuses seen.
func (c *client) wait(t *testing.T, id string) (statusDoc, []string) {
	t.Helper()
	var seen []string
	deadline := time.Now().Add(2 * time.Minute)
	for {
		status, b := c.do(t, http.MethodGet, c.base+"/data/orders/"+id, nil)
		require.Equal(t, http.StatusOK, status, "%s", b)
		var doc statusDoc
		require.NoError(t, json.Unmarshal(b, &doc))
		if len(seen) == 0 || seen[len(seen)-1] != doc.Status {
			seen = append(seen, doc.Status)
		}
		switch doc.Status {
		case "complete", "failed", "aborted":
			return doc, seen
		}
		require.True(t, time.Now().Before(deadline), "request %s still %s after 2 minutes", id, doc.Status)
		time.Sleep(100 * time.Millisecond)
	}
}

// download fetches and decodes every file of a complete request, checking
// that each needs the credentials.
func (c *client) download(t *testing.T, doc statusDoc) []order {
	t.Helper()
	var all []order
	for _, f := range doc.Files {
		require.True(t, strings.HasPrefix(f.URI, "http://"), "file uri %q is not absolute", f.URI)
		status, b := (*client)(nil).do(t, http.MethodGet, f.URI, nil)
		require.Equal(t, http.StatusUnauthorized, status, "download without credentials")
		var e errorDoc
		require.NoError(t, json.Unmarshal(b, &e))
		require.Equal(t, "unauthorized", e.ErrorCode)

		status, b = c.do(t, http.MethodGet, f.URI, nil)
		require.Equal(t, http.StatusOK, status, "%s: %s", f.URI, b)
		require.Equal(t, (int64(len(b))+1023)/1024, f.Size, "size is compressed kilobytes")
		require.Greater(t, f.Expires, time.Now().Unix())
		zr, err := gzip.NewReader(bytes.NewReader(b))
		require.NoError(t, err)
		var orders []order
		require.NoError(t, json.NewDecoder(zr).Decode(&orders))
		require.NotNil(t, orders, "a file is a JSON array")
		all = append(all, orders...)
	}
	return all
}

func TestDoshiiClientEndToEnd(t *testing.T) {
	s := startDev(t, "--seed-orders", "3000")
	require.GreaterOrEqual(t, len(s.Apps), 2)
	app, other := s.Apps[0], s.Apps[1]
	merchant := app.Merchants[0]
	base := s.APIURL + "/partner/v3"
	c := &client{base: base, appID: app.AppID, clientID: app.ClientID, secret: app.ClientSecret}
	ctx := context.Background()
	db, err := pgx.Connect(ctx, s.DatabaseURL)
	require.NoError(t, err)
	defer db.Close(ctx)

	start := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	// The body of Doshii's SDK example, webhook aside: delivery is not
	// this test's concern.
	id := c.create(t, map[string]any{
		"doshiiId": merchant, "mimeType": "application/json", "fileSize": 50,
		"sortBy": map[string]string{"property": "created", "method": "ASC"},
		"range":  map[string]int64{"start": start.Unix(), "end": end.Unix()},
	})
	doc, seen := c.wait(t, id)
	require.Equal(t, "complete", doc.Status, "statuses %v", seen)
	require.Subset(t, []string{"pending", "processing", "complete"}, seen)
	require.GreaterOrEqual(t, doc.RequestCompletedAt, doc.RequestCreatedAt)
	require.Greater(t, len(doc.Files), 1, "50 KB files: several parts")

	// The files, read as a Doshii client would, agree with SQL over the
	// same half-open window, in creation order.
	var rows, sumTotal, txns, amount int64
	var locations int
	require.NoError(t, db.QueryRow(ctx, `
		SELECT count(*), coalesce(sum(total), 0), count(DISTINCT location_id),
		       (SELECT count(*) FROM transactions t JOIN orders o ON o.id = t.order_id
		         WHERE o.merchant_id = $1 AND o.created_at >= $2 AND o.created_at < $3),
		       (SELECT coalesce(sum(t.amount), 0) FROM transactions t JOIN orders o ON o.id = t.order_id
		         WHERE o.merchant_id = $1 AND o.created_at >= $2 AND o.created_at < $3)
		FROM orders WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3`,
		merchant, start, end).Scan(&rows, &sumTotal, &locations, &txns, &amount))
	require.Positive(t, rows)
	orders := c.download(t, doc)
	require.Len(t, orders, int(rows))
	var kb int64
	for _, f := range doc.Files {
		kb += f.Size
	}
	t.Logf("%d orders in %d files, about %d compressed bytes per order", rows, len(doc.Files), kb*1024/rows)
	var fileTotal, fileTxns, fileAmount int64
	prev := ""
	for _, o := range orders {
		fileTotal += o.TotalAmount
		fileTxns += int64(len(o.Transactions))
		for _, x := range o.Transactions {
			fileAmount += x.Amount
		}
		require.LessOrEqual(t, prev, o.CreatedAt, "orders in creation order")
		prev = o.CreatedAt
	}
	require.Equal(t, sumTotal, fileTotal)
	require.Equal(t, txns, fileTxns)
	require.Equal(t, amount, fileAmount)
	require.Equal(t, rows, doc.Tally.Orders)
	require.Equal(t, txns, doc.Tally.Transactions)
	require.Equal(t, amount, doc.Tally.Amount)
	require.Equal(t, locations, doc.Tally.Locations)

	// Classifiers keep the merchant's locations of those kinds, whatever
	// their case.
	var classifier string
	require.NoError(t, db.QueryRow(ctx, `SELECT classifier FROM locations WHERE merchant_id = $1 ORDER BY id LIMIT 1`, merchant).Scan(&classifier))
	var classRows int64
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM orders o JOIN locations l ON l.id = o.location_id
		WHERE o.merchant_id = $1 AND o.created_at >= $2 AND o.created_at < $3 AND l.classifier = $4`,
		merchant, start, end, classifier).Scan(&classRows))
	// This request also asks for a webhook, with headers of its own.
	type hook struct {
		header http.Header
		body   []byte
	}
	hooks := make(chan hook, 2)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hooks <- hook{r.Header.Clone(), b}
	}))
	defer recv.Close()
	classID := c.create(t, map[string]any{
		"doshiiId": merchant, "classifiers": []string{strings.ToUpper(classifier)},
		"range":   map[string]int64{"start": start.Unix(), "end": end.Unix()},
		"webhook": map[string]any{"url": recv.URL + "/doshii", "headers": map[string]string{"X-Partner-Token": "tok-123"}},
	})
	classDoc, _ := c.wait(t, classID)
	require.Equal(t, "complete", classDoc.Status)
	require.Equal(t, classRows, classDoc.Tally.Orders)
	require.Len(t, c.download(t, classDoc), int(classRows))
	select {
	case h := <-hooks:
		require.Equal(t, "tok-123", h.header.Get("X-Partner-Token"), "the requested headers are sent")
		var posted statusDoc
		require.NoError(t, json.Unmarshal(h.body, &posted), "%s", h.body)
		require.Equal(t, classID, posted.RequestID)
		require.Equal(t, "complete", posted.Status, "the body is the status document")
		require.Equal(t, classDoc.Tally.Orders, posted.Tally.Orders)
	case <-time.After(30 * time.Second):
		t.Fatal("no webhook within 30s of completion")
	}

	// Refusals, in Doshii's error shape.
	for _, tc := range []struct {
		name   string
		c      *client
		method string
		url    string
		body   any
		status int
	}{
		{"no credentials", nil, http.MethodGet, base + "/data/orders/" + id, nil, http.StatusUnauthorized},
		{"stale token", &client{base: base, appID: app.AppID, clientID: app.ClientID, secret: app.ClientSecret,
			tokenAt: func() time.Time { return time.Now().Add(-10 * time.Minute) }}, http.MethodGet, base + "/data/orders/" + id, nil, http.StatusUnauthorized},
		{"wrong secret", &client{base: base, appID: app.AppID, clientID: app.ClientID, secret: other.ClientSecret}, http.MethodGet, base + "/data/orders/" + id, nil, http.StatusUnauthorized},
		{"another app's request", &client{base: base, appID: other.AppID, clientID: other.ClientID, secret: other.ClientSecret}, http.MethodGet, base + "/data/orders/" + id, nil, http.StatusNotFound},
		{"another app's file", &client{base: base, appID: other.AppID, clientID: other.ClientID, secret: other.ClientSecret}, http.MethodGet, doc.Files[0].URI, nil, http.StatusNotFound},
		{"unknown request", c, http.MethodGet, base + "/data/orders/xnosuchrequest", nil, http.StatusNotFound},
		{"other dataSet", c, http.MethodPost, base + "/data/tables", map[string]any{"doshiiId": merchant}, http.StatusBadRequest},
		{"merchant not installed", c, http.MethodPost, base + "/data/orders", map[string]any{"doshiiId": "no-such-merchant",
			"range": map[string]int64{"start": start.Unix(), "end": end.Unix()}}, http.StatusNotFound},
		{"sort not supported", c, http.MethodPost, base + "/data/orders", map[string]any{"doshiiId": merchant,
			"sortBy": map[string]string{"property": "created", "method": "DESC"},
			"range":  map[string]int64{"start": start.Unix(), "end": end.Unix()}}, http.StatusBadRequest},
		{"wrong method", c, http.MethodDelete, base + "/data/orders/" + id, nil, http.StatusMethodNotAllowed},
		{"unknown path", c, http.MethodGet, base + "/orders", nil, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b := tc.c.do(t, tc.method, tc.url, tc.body)
			require.Equal(t, tc.status, status, "%s", b)
			var e errorDoc
			require.NoError(t, json.Unmarshal(b, &e), "%s", b)
			require.NotEmpty(t, e.Message)
			require.NotEmpty(t, e.ErrorCode)
		})
	}

	// The same flow from a Python client written from the same pages.
	t.Run("python client", func(t *testing.T) {
		python, err := exec.LookPath("python3")
		require.NoError(t, err, "python3 is needed for the Python client test")
		cmd := exec.Command(python, filepath.Join("testdata", "client.py"))
		cmd.Env = append(os.Environ(),
			"DOSHII_BASE_URL="+base, "DOSHII_APP_ID="+app.AppID, "DOSHII_CLIENT_ID="+app.ClientID,
			"DOSHII_CLIENT_SECRET="+app.ClientSecret, "DOSHII_ID="+merchant, "DOSHII_FILE_SIZE=100",
			"DOSHII_RANGE_START="+strconv.FormatInt(start.Unix(), 10), "DOSHII_RANGE_END="+strconv.FormatInt(end.Unix(), 10))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "client.py: %s", stderr.String())
		var got struct {
			CreatedStatus string `json:"createdStatus"`
			Files         int    `json:"files"`
			Orders        int64  `json:"orders"`
			Total         int64  `json:"total"`
			Transactions  int64  `json:"transactions"`
			Amount        int64  `json:"amount"`
			Tally         struct {
				Orders       int64 `json:"orders"`
				Transactions int64 `json:"transactions"`
				Amount       int64 `json:"amount"`
			} `json:"tally"`
		}
		require.NoError(t, json.Unmarshal(out, &got), "%s", out)
		require.Equal(t, "pending", got.CreatedStatus)
		require.Positive(t, got.Files)
		require.Equal(t, rows, got.Orders)
		require.Equal(t, sumTotal, got.Total)
		require.Equal(t, txns, got.Transactions)
		require.Equal(t, amount, got.Amount)
		require.Equal(t, fmt.Sprint(rows, txns, amount), fmt.Sprint(got.Tally.Orders, got.Tally.Transactions, got.Tally.Amount))
	})
}
