package httpx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
)

func TestRetryAfter(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "1", time.Millisecond: "1", time.Second: "1", 1400 * time.Millisecond: "2",
		1500 * time.Millisecond: "2", 30 * time.Second: "30", 46 * time.Hour: "165600",
	} {
		require.Equal(t, want, RetryAfter(d), d)
	}
}

func TestMethod(t *testing.T) {
	m := map[string]int{http.MethodPost: 1, http.MethodGet: 2}
	for method, want := range map[string]int{http.MethodGet: 2, http.MethodHead: 2, http.MethodPost: 1} {
		f, _, ok := Method(httptest.NewRecorder(), httptest.NewRequest(method, "/", nil), m)
		require.True(t, ok, method)
		require.Equal(t, want, f, method)
	}
	w := httptest.NewRecorder()
	_, allow, ok := Method(w, httptest.NewRequest(http.MethodDelete, "/", nil), m)
	require.False(t, ok)
	require.Equal(t, []string{"GET", "HEAD", "POST"}, allow)
	require.Equal(t, "GET, HEAD, POST", w.Header().Get("Allow"))
	require.Equal(t, []string{"POST"}, Allow(map[string]int{http.MethodPost: 1}))
}

func TestBearer(t *testing.T) {
	for auth, want := range map[string]string{
		"Bearer abc": "abc", "bearer  abc ": "abc", " BEARER abc": "abc",
		"": "", "Bearer": "", "Bearer ": "", "Basic abc": "", "abc": "",
	} {
		got, ok := Bearer(auth)
		require.Equal(t, want, got, auth)
		require.Equal(t, want != "", ok, auth)
	}
}

func TestClassify(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	e := Classify(r, fmt.Errorf("wrapped: %w", exportd.Errorf(exportd.CodeGone, "export %q expired", "x")))
	require.Equal(t, exportd.CodeGone, e.Code)
	e = Classify(r, &exportd.ValidationError{Field: "end", Reason: "must be after start"})
	require.Equal(t, exportd.CodeInvalidRequest, e.Code)
	require.Equal(t, "end", e.Field)
	require.Equal(t, "end must be after start", e.Message)
	require.Equal(t, CodeTooLarge, Classify(r, &http.MaxBytesError{Limit: 10}).Code)
	require.Equal(t, exportd.CodeInternal, Classify(r, errors.New("boom")).Code)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e = Classify(r.WithContext(ctx), ctx.Err())
	require.Equal(t, exportd.CodeUnavailable, e.Code)
	require.Positive(t, e.RetryAfter)
}
