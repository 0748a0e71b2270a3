package webhook

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// DefaultTimeout bounds one delivery attempt when Sender.Timeout is zero:
// the top of the 15-30 s the Standard Webhooks spec recommends, so slow
// receivers still have time to acknowledge.
const DefaultTimeout = 30 * time.Second

// DefaultUserAgent identifies our deliveries to receivers and their
// firewalls when Sender.UserAgent is empty.
const DefaultUserAgent = "exportd-webhook/1"

// maxResponseBody is how much of a response is read: enough to show a
// receiver's error message, too little for a hostile one to hurt us.
const maxResponseBody = 4 << 10

// Message is one webhook to deliver.
type Message struct {
	URL string
	// ID identifies the event and stays the same across retries, so
	// receivers can use it as an idempotency key. No '.' or spaces.
	ID   string
	Body []byte
	// Secret signs the message; nil (or empty) sends it unsigned.
	Secret []byte
	// Headers are extra headers the client asked for (the Doshii dialect
	// lets it). Content-Type, webhook-* and the headers that frame the
	// request are ours; extra headers with those names are dropped.
	Headers map[string]string
}

// Result is what the receiver answered, when it answered at all.
type Result struct {
	Status int
}

// Sender delivers webhooks. NewSender gives it a guarded client that keeps
// connections; the zero value is just as guarded but connects afresh.
type Sender struct {
	// Client sends the requests; nil means a guarded client built for
	// each Send. A client supplied here must bring its own guard.
	Client *http.Client
	// AllowPrivate permits loopback, private and link-local destinations,
	// which only the dev stack needs.
	AllowPrivate bool
	// Timeout bounds one attempt, response included; zero means
	// DefaultTimeout.
	Timeout time.Duration
	// UserAgent is sent as User-Agent; empty means DefaultUserAgent.
	UserAgent string
	// Now stamps webhook-timestamp; nil means time.Now.
	Now func() time.Time
}

// NewSender returns a Sender whose client refuses private destinations
// unless allowPrivate, ignores proxy settings and follows no redirects.
func NewSender(allowPrivate bool) *Sender {
	s := &Sender{AllowPrivate: allowPrivate}
	s.Client = s.newClient()
	return s
}

// newClient builds the guarded client. The proxy is off on purpose: with
// one, the dialer would check the proxy's address, not the receiver's.
// Redirects are not followed, as the Standard Webhooks spec recommends:
// the receiver should fix its URL, and we never chase a Location into
// somewhere the URL check did not see.
func (s *Sender) newClient() *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: s.control}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            dialer.DialContext,
			ForceAttemptHTTP2:      true,
			TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:    10 * time.Second,
			MaxResponseHeaderBytes: 64 << 10,
			MaxIdleConnsPerHost:    2,
			IdleConnTimeout:        90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Send POSTs m once. A nil error means a 2xx answer. Otherwise Retryable
// tells whether another attempt may succeed, errors.Is(err, ErrGone) that
// the receiver wants no more webhooks, and a *StatusError carries the
// answer. Result.Status is set whenever the receiver answered.
func (s *Sender) Send(ctx context.Context, m Message) (Result, error) {
	if err := ValidateURL(m.URL, s.AllowPrivate); err != nil {
		return Result{}, permanent(err)
	}
	if err := validateID(m.ID); err != nil {
		return Result{}, permanent(err)
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	timeout := cmp.Or(s.Timeout, DefaultTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL, bytes.NewReader(m.Body))
	if err != nil {
		return Result{}, permanent(fmt.Errorf("error building webhook request: %w", err))
	}
	for name, value := range m.Headers {
		if reserved(name) {
			continue
		}
		if err := checkHeader(name, value); err != nil {
			return Result{}, permanent(err)
		}
		req.Header.Set(name, value)
	}
	ts := now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", cmp.Or(s.UserAgent, DefaultUserAgent))
	// Set as the spec spells them, bypassing canonicalization; reserved
	// extras were dropped above, so nothing else carries these names.
	req.Header[HeaderID] = []string{m.ID}
	req.Header[HeaderTimestamp] = []string{strconv.FormatInt(ts.Unix(), 10)}
	if len(m.Secret) > 0 {
		req.Header[HeaderSignature] = []string{Sign(m.Secret, m.ID, ts, m.Body)}
	}

	client := s.Client
	if client == nil {
		client = s.newClient()
		defer client.CloseIdleConnections()
	}
	resp, err := client.Do(req)
	if err != nil {
		return Result{}, transportError(ctx, err, req.URL.Host, timeout)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	return Result{Status: resp.StatusCode}, statusError(resp, body, now())
}

// transportError explains a failure to get any answer. The URL is left
// out, as clients put tokens in query strings and errors get logged.
func transportError(ctx context.Context, err error, host string, timeout time.Duration) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(err, ErrForbiddenAddress):
		return permanent(fmt.Errorf("error delivering webhook to %s: %w", host, err))
	case errors.Is(ctx.Err(), context.DeadlineExceeded) && errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("error delivering webhook to %s: no answer within %s: %w", host, timeout, err)
	default:
		return fmt.Errorf("error delivering webhook to %s: %w", host, err)
	}
}

// validateID keeps the id printable ASCII without '.', so the signed
// content "<id>.<timestamp>.<body>" has one reading and fits in a header.
func validateID(id string) error {
	if id == "" || len(id) > 256 {
		return errors.New("webhook message id must be 1 to 256 characters")
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '.' {
			return fmt.Errorf("webhook message id %q contains %q; use letters, digits, '-', '_' or ':'", id, c)
		}
	}
	return nil
}
