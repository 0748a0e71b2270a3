package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"
)

// LoadConfig describes one HTTP load test against a single URL.
type LoadConfig struct {
	URL    string
	Header http.Header
	// Clients is the number of concurrent keep-alive connections.
	Clients int
	// Rate, when positive, is the offered load in requests per second,
	// sent on schedule whatever the server's pace (open loop); latency is
	// measured from each request's scheduled time, so a server that falls
	// behind shows it. Zero sends back to back on every client (closed
	// loop), measuring the most the server sustains.
	Rate     float64
	Duration time.Duration
}

// LoadResult is what a load test measured; latencies in milliseconds.
type LoadResult struct {
	Clients    int     `json:"clients"`
	Offered    float64 `json:"offered_per_s,omitempty"`
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_s"`
	P50        float64 `json:"p50_ms"`
	P90        float64 `json:"p90_ms"`
	P99        float64 `json:"p99_ms"`
	Max        float64 `json:"max_ms"`
	FirstError string  `json:"first_error,omitempty"`
}

// Load runs a load test and reports throughput and latency percentiles.
// Only successful (200) responses count as requests; the rest are errors.
func Load(ctx context.Context, cfg LoadConfig) (LoadResult, error) {
	if cfg.Clients <= 0 || cfg.Duration <= 0 {
		return LoadResult{}, errors.New("load test needs clients and a duration")
	}
	tr := &http.Transport{
		MaxIdleConns: cfg.Clients, MaxIdleConnsPerHost: cfg.Clients, MaxConnsPerHost: cfg.Clients,
		DisableCompression: true, IdleConnTimeout: time.Minute,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	var (
		mu       sync.Mutex
		lat      []time.Duration
		errs     int64
		firstErr string
	)
	record := func(l []time.Duration, e int64, fe string) {
		mu.Lock()
		defer mu.Unlock()
		lat = append(lat, l...)
		errs += e
		if firstErr == "" {
			firstErr = fe
		}
	}
	do := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.URL, nil)
		if err != nil {
			return err
		}
		req.Header = cfg.Header.Clone()
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", cfg.URL, resp.Status)
		}
		return nil
	}

	start := time.Now()
	deadline := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	if cfg.Rate > 0 {
		// Open loop: a scheduler hands out send times; a client late to
		// pick one up still measures from when it was due.
		n := int(cfg.Rate * cfg.Duration.Seconds())
		due := make(chan time.Time, n)
		interval := time.Duration(float64(time.Second) / cfg.Rate)
		for range cfg.Clients {
			wg.Go(func() {
				var l []time.Duration
				var e int64
				var fe string
				for at := range due {
					if err := do(); err != nil {
						e++
						if fe == "" {
							fe = err.Error()
						}
						continue
					}
					l = append(l, time.Since(at))
				}
				record(l, e, fe)
			})
		}
		for i := range n {
			at := start.Add(time.Duration(i) * interval)
			if d := time.Until(at); d > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
			}
			if ctx.Err() != nil {
				break
			}
			due <- at
		}
		close(due)
	} else {
		for range cfg.Clients {
			wg.Go(func() {
				var l []time.Duration
				var e int64
				var fe string
				for time.Now().Before(deadline) && ctx.Err() == nil {
					t := time.Now()
					if err := do(); err != nil {
						e++
						if fe == "" {
							fe = err.Error()
						}
						continue
					}
					l = append(l, time.Since(t))
				}
				record(l, e, fe)
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return LoadResult{}, err
	}

	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	res := LoadResult{
		Clients: cfg.Clients, Offered: cfg.Rate, Requests: int64(len(lat)), Errors: errs,
		Seconds: elapsed.Seconds(), PerSecond: float64(len(lat)) / elapsed.Seconds(), FirstError: firstErr,
	}
	if len(lat) > 0 {
		res.P50 = ms(Percentile(lat, 0.50))
		res.P90 = ms(Percentile(lat, 0.90))
		res.P99 = ms(Percentile(lat, 0.99))
		res.Max = ms(lat[len(lat)-1])
	}
	return res, nil
}

// Percentile returns the p-quantile (0..1) of sorted values, nearest rank.
func Percentile[T any](sorted []T, p float64) T {
	var zero T
	if len(sorted) == 0 {
		return zero
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Median returns the median of xs (the mean of the middle two for an even
// count), leaving xs unchanged.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}
