package webhook_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd/webhook"
)

// received is what a receiver saw of one request.
type received struct {
	method string
	header http.Header
	body   []byte
}

// receiver is an httptest.Server that records what reaches it.
type receiver struct {
	*httptest.Server
	hits atomic.Int32
	mu   sync.Mutex
	got  []received
}

// newReceiver starts a receiver answering with handler, or 200 when nil.
func newReceiver(t *testing.T, handler http.HandlerFunc) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, received{method: r.Method, header: r.Header.Clone(), body: body})
		rc.mu.Unlock()
		if handler != nil {
			handler(w, r)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) last(t *testing.T) received {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	require.NotEmpty(t, rc.got)
	return rc.got[len(rc.got)-1]
}

// port is the receiver's port, to aim other host spellings at it.
func (rc *receiver) port(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(rc.URL)
	require.NoError(t, err)
	return u.Port()
}

var fixedNow = time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)

// devSender may reach httptest servers, which listen on loopback.
func devSender() *webhook.Sender {
	s := webhook.NewSender(true)
	s.Now = func() time.Time { return fixedNow }
	s.Timeout = 5 * time.Second
	return s
}

func TestSendSigned(t *testing.T) {
	rc := newReceiver(t, nil)
	secret := []byte("a secret of at least 24 bytes")
	body := []byte(`{"id":"exp_1","status":"succeeded"}`)
	res, err := devSender().Send(context.Background(), webhook.Message{
		URL: rc.URL + "/hooks/exportd?token=t", ID: "exp_1-succeeded", Body: body, Secret: secret,
		Headers: map[string]string{
			"X-Doshii-Token":    "abc",
			"authorization":     "Bearer xyz",
			"webhook-id":        "forged",
			"Webhook-Signature": "v1,Zm9yZ2Vk",
			"WEBHOOK-TIMESTAMP": "1",
			"content-type":      "text/plain",
			"User-Agent":        "not us",
			"Host":              "elsewhere.example",
		},
	})
	require.NoError(t, err)
	require.Equal(t, webhook.Result{Status: http.StatusOK}, res)

	got := rc.last(t)
	require.Equal(t, http.MethodPost, got.method)
	require.Equal(t, body, got.body)
	require.Equal(t, []string{"application/json"}, got.header.Values("Content-Type"))
	require.Equal(t, []string{"exp_1-succeeded"}, got.header.Values(webhook.HeaderID))
	require.Equal(t, []string{strconv.FormatInt(fixedNow.Unix(), 10)}, got.header.Values(webhook.HeaderTimestamp))
	require.Len(t, got.header.Values(webhook.HeaderSignature), 1)
	require.Equal(t, webhook.DefaultUserAgent, got.header.Get("User-Agent"))
	require.Equal(t, "abc", got.header.Get("X-Doshii-Token"))
	require.Equal(t, "Bearer xyz", got.header.Get("Authorization"))
	require.NoError(t, webhook.Verify(secret, got.header, got.body, fixedNow.Add(time.Second), 0))
}

func TestSendUnsigned(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	s := devSender()
	s.UserAgent = "exportd-test"
	res, err := s.Send(context.Background(), webhook.Message{URL: rc.URL, ID: "evt_1", Body: []byte(`{}`)})
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, res.Status)
	got := rc.last(t)
	require.Empty(t, got.header.Values(webhook.HeaderSignature))
	require.Equal(t, "evt_1", got.header.Get(webhook.HeaderID))
	require.NotEmpty(t, got.header.Get(webhook.HeaderTimestamp))
	require.Equal(t, "exportd-test", got.header.Get("User-Agent"))
}

func TestSendClassifiesAnswers(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		if code >= 300 && code < 400 {
			w.Header().Set("Location", "https://example.com/new")
		}
		w.WriteHeader(code)
	})
	for _, tc := range []struct {
		status    int
		delivered bool
		retryable bool
		gone      bool
	}{
		{status: 200, delivered: true},
		{status: 202, delivered: true},
		{status: 204, delivered: true},
		{status: 301},
		{status: 302},
		{status: 307},
		{status: 400},
		{status: 401},
		{status: 404},
		{status: 408, retryable: true},
		{status: 410, gone: true},
		{status: 422},
		{status: 429, retryable: true},
		{status: 500, retryable: true},
		{status: 502, retryable: true},
		{status: 503, retryable: true},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			res, err := devSender().Send(context.Background(), webhook.Message{URL: rc.URL + "/" + strconv.Itoa(tc.status), ID: "evt_1"})
			require.Equal(t, tc.status, res.Status)
			if tc.delivered {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			var se *webhook.StatusError
			require.ErrorAs(t, err, &se)
			require.Equal(t, tc.status, se.Status)
			require.Equal(t, tc.retryable, webhook.Retryable(err), err)
			require.Equal(t, tc.gone, errors.Is(err, webhook.ErrGone))
			if tc.status >= 300 && tc.status < 400 {
				require.Equal(t, "https://example.com/new", se.Location)
				require.Contains(t, err.Error(), "redirects are not followed")
			}
		})
	}
}

func TestSendRetryAfter(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/seconds" {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.Header().Set("Retry-After", fixedNow.Add(90*time.Second).Format(http.TimeFormat))
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	for path, want := range map[string]time.Duration{"/seconds": 2 * time.Minute, "/date": 90 * time.Second} {
		_, err := devSender().Send(context.Background(), webhook.Message{URL: rc.URL + path, ID: "evt_1"})
		var se *webhook.StatusError
		require.ErrorAs(t, err, &se)
		require.Equal(t, want, se.RetryAfter, path)
		require.True(t, webhook.Retryable(err))
	}
}

func TestSendReadsLittleOfTheAnswer(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(strings.Repeat("x", 1<<20)))
	})
	_, err := devSender().Send(context.Background(), webhook.Message{URL: rc.URL, ID: "evt_1"})
	var se *webhook.StatusError
	require.ErrorAs(t, err, &se)
	require.Len(t, se.Body, 4<<10)
	require.NotContains(t, err.Error(), "xxxx", "the receiver's text stays out of the message")
}

func TestSendTimeout(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	s := devSender()
	s.Timeout = 50 * time.Millisecond
	start := time.Now()
	res, err := s.Send(context.Background(), webhook.Message{URL: rc.URL, ID: "evt_1"})
	require.Less(t, time.Since(start), 5*time.Second)
	require.Zero(t, res.Status)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.True(t, webhook.Retryable(err))
	require.Contains(t, err.Error(), "no answer within 50ms")
}

func TestSendNetworkErrorsAreRetryable(t *testing.T) {
	rc := newReceiver(t, nil)
	target := rc.URL + "/?token=secret-in-url"
	rc.Close() // nothing listens there any more

	_, err := devSender().Send(context.Background(), webhook.Message{URL: target, ID: "evt_1"})
	require.Error(t, err)
	require.True(t, webhook.Retryable(err), err)
	require.NotContains(t, err.Error(), "secret-in-url", "URLs stay out of errors")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = devSender().Send(ctx, webhook.Message{URL: target, ID: "evt_1"})
	require.ErrorIs(t, err, context.Canceled)
	require.True(t, webhook.Retryable(err))
}

func TestSendDoesNotFollowRedirects(t *testing.T) {
	target := newReceiver(t, nil)
	origin := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/moved", http.StatusFound)
	})
	res, err := devSender().Send(context.Background(), webhook.Message{URL: origin.URL, ID: "evt_1"})
	require.Equal(t, http.StatusFound, res.Status)
	var se *webhook.StatusError
	require.ErrorAs(t, err, &se)
	require.Equal(t, target.URL+"/moved", se.Location)
	require.False(t, webhook.Retryable(err))
	require.EqualValues(t, 1, origin.hits.Load())
	require.Zero(t, target.hits.Load(), "the redirect was followed")
}

func TestSendRefusesPrivateDestinations(t *testing.T) {
	rc := newReceiver(t, nil)
	port := rc.port(t)
	s := webhook.NewSender(false)
	s.Timeout = 2 * time.Second // a backstop: no case should wait on the network

	for _, tc := range []struct {
		url string
		err error
	}{
		{url: rc.URL, err: webhook.ErrForbiddenAddress},
		{url: "http://localhost:" + port + "/", err: webhook.ErrForbiddenAddress}, // refused when connecting
		{url: "http://[::1]:" + port + "/", err: webhook.ErrForbiddenAddress},
		{url: "http://[::ffff:127.0.0.1]:" + port + "/", err: webhook.ErrForbiddenAddress},
		{url: "http://[::ffff:7f00:1]:" + port + "/", err: webhook.ErrForbiddenAddress},
		{url: "http://0.0.0.0:" + port + "/", err: webhook.ErrForbiddenAddress},
		{url: "http://127.1:" + port + "/", err: webhook.ErrInvalidURL},
		{url: "http://2130706433:" + port + "/", err: webhook.ErrInvalidURL},
		{url: "http://169.254.169.254/latest/meta-data/", err: webhook.ErrForbiddenAddress},
		{url: "http://10.1.2.3/", err: webhook.ErrForbiddenAddress},
		{url: "http://192.168.1.1/", err: webhook.ErrForbiddenAddress},
		{url: "http://100.64.0.1/", err: webhook.ErrForbiddenAddress},
		{url: "http://[fd00::1]/", err: webhook.ErrForbiddenAddress},
		{url: "http://[fe80::1%25eth0]/", err: webhook.ErrForbiddenAddress},
		{url: "ftp://127.0.0.1:" + port + "/", err: webhook.ErrInvalidURL},
		{url: "file:///etc/passwd", err: webhook.ErrInvalidURL},
		{url: "http://user:pass@localhost:" + port + "/", err: webhook.ErrInvalidURL},
		{url: "http://user:pass@example.com/", err: webhook.ErrInvalidURL},
	} {
		t.Run(tc.url, func(t *testing.T) {
			res, err := s.Send(context.Background(), webhook.Message{URL: tc.url, ID: "evt_1", Body: []byte(`{}`)})
			require.ErrorIs(t, err, tc.err)
			require.False(t, webhook.Retryable(err), err)
			require.Zero(t, res.Status)
		})
	}
	require.Zero(t, rc.hits.Load(), "a request reached the loopback receiver")
}

func TestGuardHoldsAtConnectTime(t *testing.T) {
	// The client alone, without Send's URL check: the dialer refuses.
	rc := newReceiver(t, nil)
	c := webhook.NewSender(false).Client
	for _, u := range []string{rc.URL, "http://localhost:" + rc.port(t)} {
		_, err := c.Post(u, "application/json", strings.NewReader(`{}`))
		require.ErrorIs(t, err, webhook.ErrForbiddenAddress, u)
	}
	require.Zero(t, rc.hits.Load())
}

func TestZeroSender(t *testing.T) {
	rc := newReceiver(t, nil)
	local := "http://localhost:" + rc.port(t)

	_, err := (&webhook.Sender{}).Send(context.Background(), webhook.Message{URL: local, ID: "evt_1"})
	require.ErrorIs(t, err, webhook.ErrForbiddenAddress)
	require.Zero(t, rc.hits.Load())

	res, err := (&webhook.Sender{AllowPrivate: true}).Send(context.Background(), webhook.Message{URL: local, ID: "evt_1"})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.Status)
	require.Equal(t, webhook.DefaultUserAgent, rc.last(t).header.Get("User-Agent"))
}

func TestSendRefusesBadMessages(t *testing.T) {
	rc := newReceiver(t, nil)
	for name, m := range map[string]webhook.Message{
		"no id":           {URL: rc.URL},
		"id with a dot":   {URL: rc.URL, ID: "evt.1"},
		"id with a space": {URL: rc.URL, ID: "evt 1"},
		"non-ASCII id":    {URL: rc.URL, ID: "évt"},
		"long id":         {URL: rc.URL, ID: strings.Repeat("a", 257)},
		"header name":     {URL: rc.URL, ID: "evt_1", Headers: map[string]string{"X Token": "a"}},
		"header value":    {URL: rc.URL, ID: "evt_1", Headers: map[string]string{"X-Token": "a\r\nX-Injected: 1"}},
		"empty url":       {ID: "evt_1"},
	} {
		_, err := devSender().Send(context.Background(), m)
		require.Error(t, err, name)
		require.False(t, webhook.Retryable(err), name)
	}
	require.Zero(t, rc.hits.Load())
}

func TestValidateHeaders(t *testing.T) {
	many := map[string]string{}
	for i := range 51 {
		many["X-H"+strconv.Itoa(i)] = "v"
	}
	for _, tc := range []struct {
		name string
		h    map[string]string
		ok   bool
	}{
		{name: "none", ok: true},
		{name: "doshii-like", h: map[string]string{"X-Doshii-Signature": "abc", "Authorization": "Bearer a.b.c"}, ok: true},
		{name: "webhook-*", h: map[string]string{"webhook-id": "x"}},
		{name: "webhook-* in other case", h: map[string]string{"WEBHOOK-SIGNATURE": "x"}},
		{name: "content-type", h: map[string]string{"content-type": "text/plain"}},
		{name: "host", h: map[string]string{"Host": "internal"}},
		{name: "proxy-*", h: map[string]string{"Proxy-Authorization": "x"}},
		{name: "bad name", h: map[string]string{"X:Y": "x"}},
		{name: "empty name", h: map[string]string{"": "x"}},
		{name: "newline in value", h: map[string]string{"X-Y": "a\nb"}},
		{name: "long value", h: map[string]string{"X-Y": strings.Repeat("a", 4097)}},
		{name: "same name twice", h: map[string]string{"X-Y": "a", "x-y": "b"}},
		{name: "too many", h: many},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := webhook.ValidateHeaders(tc.h)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}
