package bench_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd/bench"
)

func TestLoadClosedAndOpenLoop(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	h := http.Header{"Authorization": {"Bearer k"}}
	ctx := context.Background()

	closed, err := bench.Load(ctx, bench.LoadConfig{URL: srv.URL, Header: h, Clients: 4, Duration: 200 * time.Millisecond})
	require.NoError(t, err)
	require.Positive(t, closed.Requests)
	require.Zero(t, closed.Errors)
	require.LessOrEqual(t, closed.P50, closed.P99)

	open, err := bench.Load(ctx, bench.LoadConfig{URL: srv.URL, Header: h, Clients: 4, Rate: 200, Duration: 500 * time.Millisecond})
	require.NoError(t, err)
	require.InDelta(t, 100, open.Requests, 5, "rate x duration requests are sent")
	require.Equal(t, 200.0, open.Offered)

	bad, err := bench.Load(ctx, bench.LoadConfig{URL: srv.URL, Clients: 1, Duration: 50 * time.Millisecond})
	require.NoError(t, err)
	require.Zero(t, bad.Requests)
	require.Positive(t, bad.Errors)
	require.Contains(t, bad.FirstError, "401")
}
