package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd/postgres"
)

// The large export of the fault tests: every order of one merchant, in
// all four formats, rotated every faultPartRows rows (20 parts, so 80
// files, many commits to resume between). Undisturbed it takes 3-15 s on
// two cores depending on what else runs, so faults are placed by part
// (watching the blob store), not by time.
const (
	faultOrders   = 150_000
	faultPartRows = 7_500
)

// TestWorkerKilledThreeTimes SIGKILLs the only worker three times during
// one large export, each time in the middle of a later part, and starts a
// new one. A killed worker cannot hand over, so each retry waits out the
// Export activity's heartbeat timeout; it must then resume from the last
// checkpoint that reached Temporal (never from scratch), write again the
// parts committed after it, and end byte-identical to an undisturbed
// export. That one runs while the first heartbeat timeout is waited out,
// on the fresh worker.
func TestWorkerKilledThreeTimes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newFaultStack(t, faultOrders)
	w := s.startWorker(t)
	body := s.bigExport(faultPartRows)

	began := time.Now()
	id := s.create(t, body)
	var want map[string]string
	var base, waited time.Duration
	midPart := 0
	for i, parts := range []int{3, 8, 13} {
		s.waitMidPart(t, id, parts)
		w.kill(t)
		killed := time.Now()
		// What the retry resumes from: the last checkpoint Temporal has.
		at, err := s.exportAttempt(ctx, id)
		require.NoError(t, err)
		committed := s.committedParts(t, id)
		// A kill mid-part leaves that part's uploads behind, one per
		// format; the retry discards them.
		partial := s.uploadsOf(t, id, at.Attempt)
		if len(partial) > 0 {
			midPart++
		}
		// A moment without any worker, as when a supervisor restarts it.
		time.Sleep(500 * time.Millisecond)
		w = s.startWorker(t)
		if want == nil {
			want, base = s.undisturbed(t, body)
		}
		resumed, after := s.waitAttemptRunning(t, id, at.Attempt)
		require.NotZero(t, after.Attempt, "the export finished without a retry after kill %d", i+1)
		cp := after.Checkpoint
		require.Positive(t, cp.Rows, "kill %d: the retry starts over instead of resuming", i+1)
		require.GreaterOrEqual(t, cp.Rows, at.Checkpoint.Rows, "kill %d: the retry resumes from the last checkpoint", i+1)
		require.Zero(t, cp.Rows%faultPartRows, "a checkpoint holds whole parts")
		waited += resumed.Sub(killed)
		t.Logf("kill %d (attempt %d) in part %d, leaving %d partial uploads; last checkpoint at part %d: attempt %d running %s later, rewriting %d committed parts",
			i+1, at.Attempt, committed, len(partial), at.Checkpoint.Part, after.Attempt,
			resumed.Sub(killed).Round(time.Millisecond), committed-at.Checkpoint.Part)
	}
	require.Positive(t, midPart, "no kill landed in the middle of a part")
	doc := s.waitSucceeded(t, id)
	took := time.Since(began)
	require.Equal(t, int64(faultOrders), doc.Progress.Rows)
	s.verifySame(t, id, want)
	t.Logf("3 SIGKILLs survived: export took %s (undisturbed %s), %s of it until a retry ran; files byte-identical",
		took.Round(time.Millisecond), base.Round(time.Millisecond), waited.Round(time.Millisecond))
}

// TestRestartsAndGracefulStops runs the large export three more times on
// one stack: through a PostgreSQL restart, through a Temporal dev server
// restart, and across a worker asked to stop (SIGTERM), each ending
// byte-identical to the undisturbed export; then it stops the API while a
// download is in flight, which must complete.
func TestRestartsAndGracefulStops(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newFaultStack(t, faultOrders)
	w := s.startWorker(t)
	body := s.bigExport(faultPartRows)
	want, base := s.undisturbed(t, body)

	t.Run("postgres restart", func(t *testing.T) {
		began := time.Now()
		id := s.create(t, body)
		before := s.waitMidPart(t, id, 6)
		url := s.pg.URL()
		down := time.Now()
		require.NoError(t, s.pg.Stop(ctx))
		// Down long enough for the running attempt to fail and a retry
		// to find the database gone too.
		time.Sleep(2 * time.Second)
		require.NoError(t, s.pg.Start(ctx))
		up := time.Now()
		require.Equal(t, url, s.pg.URL(), "PostgreSQL restarts on its port, where the worker and the API look for it")
		writing, attempt := s.waitWriting(t, id, before.Attempt+1)
		s.waitSucceeded(t, id)
		took := time.Since(began)
		s.verifySame(t, id, want)
		t.Logf("PostgreSQL down %s mid-part (attempt %d): attempt %d writing %s after the restart; export took %s (undisturbed %s); files byte-identical",
			up.Sub(down).Round(time.Millisecond), before.Attempt, attempt,
			writing.Sub(up).Round(time.Millisecond), took.Round(time.Millisecond), base.Round(time.Millisecond))
	})

	t.Run("temporal restart", func(t *testing.T) {
		began := time.Now()
		id := s.create(t, body)
		// Early, so that the attempt is still writing when Temporal is back.
		before := s.waitMidPart(t, id, 4)
		addr := s.temporal.Address()
		down := time.Now()
		require.NoError(t, s.temporal.Stop(ctx))
		stopped := time.Now()
		require.NoError(t, s.temporal.Start(ctx))
		up := time.Now()
		require.Equal(t, addr, s.temporal.Address(), "Temporal restarts on its port, where the worker and the API look for it")
		// Back when clients see the export move past where it was.
		back := s.waitProgressBeyond(t, id, before.Checkpoint.Done)
		s.waitSucceeded(t, id)
		took := time.Since(began)
		after, err := s.finalAttempt(ctx, id)
		require.NoError(t, err)
		s.verifySame(t, id, want)
		t.Logf("Temporal stopped in %s and started in %s mid-part (attempt %d); progress visible past the fault point %s after the restart; %d Export attempts; export took %s (undisturbed %s); files byte-identical",
			stopped.Sub(down).Round(time.Millisecond), up.Sub(stopped).Round(time.Millisecond), before.Attempt,
			back.Sub(up).Round(time.Millisecond), after, took.Round(time.Millisecond), base.Round(time.Millisecond))
	})

	t.Run("worker SIGTERM hands over", func(t *testing.T) {
		began := time.Now()
		id := s.create(t, body)
		before := s.waitMidPart(t, id, 8)
		term := time.Now()
		// The SDK gives running activities WorkerStopTimeout (10 s) to
		// return; the export returns at its next page.
		exit := w.terminate(t, 15*time.Second)
		require.NoError(t, w.err, "a worker asked to stop exits cleanly")
		require.Empty(t, s.uploadsOf(t, id, before.Attempt), "a stopping attempt discards its open part")
		// Every part it committed is recorded in PostgreSQL, where the
		// retry resumes: it loses nothing.
		committed := s.committedParts(t, id)
		from, err := (&postgres.Files{Pool: s.pool}).Resume(ctx, id)
		w = s.startWorker(t)
		require.NoError(t, err)
		require.Equal(t, committed, from.Part, "the resume point a stopped worker leaves")
		resumed, after := s.waitAttemptRunning(t, id, before.Attempt)
		require.NotZero(t, after.Attempt, "the export finished without a retry after SIGTERM")
		handover := resumed.Sub(term)
		// A killed worker's export waits out the 20 s heartbeat timeout;
		// a stopped one's is handed over at once.
		require.Less(t, handover, 10*time.Second, "handover after SIGTERM")
		require.GreaterOrEqual(t, after.Checkpoint.Part, committed)
		s.waitSucceeded(t, id)
		took := time.Since(began)
		s.verifySame(t, id, want)
		t.Logf("SIGTERM in part %d: worker exited in %s with parts to %d recorded; attempt %d running %s after SIGTERM; export took %s (undisturbed %s); files byte-identical",
			committed, exit.Round(time.Millisecond), from.Part, after.Attempt,
			handover.Round(time.Millisecond), took.Round(time.Millisecond), base.Round(time.Millisecond))
	})

	t.Run("api drains in-flight download", func(t *testing.T) {
		// One big file (a single part of two months in Arrow), far more
		// than socket buffers hold, so the response is still being written
		// when the API is asked to stop.
		id := s.create(t, map[string]any{"merchantId": s.merchant, "dataset": "orders",
			"start": "2025-01-01T00:00:00Z", "end": "2025-03-01T00:00:00Z", "formats": []string{"arrow"}})
		doc := s.waitSucceeded(t, id)
		require.Len(t, doc.Files, 1)
		f := doc.Files[0]
		require.Greater(t, f.Bytes, int64(8<<20))
		s.drainDuringDownload(t, s.apiURL+"/v1/exports/"+id+"/files/"+f.Name, f.SHA256, f.Bytes)
	})
}

// drainDuringDownload starts downloading url through a connection with a
// small receive buffer, SIGTERMs the API mid-response, and checks that
// new connections are refused from then on while the download still
// completes with the right sha256, after which the API exits cleanly.
func (s *faultStack) drainDuringDownload(t *testing.T, url, sum string, size int64) {
	t.Helper()
	dialer := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		})
		return errors.Join(err, serr)
	}}
	hc := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+s.key)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	h := sha256.New()
	n, err := io.CopyN(h, resp.Body, 256<<10)
	require.NoError(t, err)

	term := time.Now()
	require.NoError(t, s.api.cmd.Process.Signal(syscall.SIGTERM))
	addr := req.URL.Host
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return false
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	}, 10*time.Second, 10*time.Millisecond, "the API still accepts connections after SIGTERM")
	refused := time.Since(term)
	// Still serving the download the client has not finished reading.
	time.Sleep(300 * time.Millisecond)
	require.False(t, s.api.exited(), "the API exited with a response in flight")

	rest, err := io.Copy(h, resp.Body)
	require.NoError(t, err, "the in-flight download is cut off")
	read := time.Now()
	require.Equal(t, size, n+rest)
	require.Equal(t, sum, hex.EncodeToString(h.Sum(nil)))
	select {
	case <-s.api.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the API did not exit within 10s of its last response")
	}
	require.NoError(t, s.api.err, "the API exits cleanly after draining")
	t.Logf("API SIGTERMed %d KiB into a %d MiB download: refused new connections after %s, finished the download %s after SIGTERM, exited %s after it",
		n>>10, size>>20, refused.Round(time.Millisecond), read.Sub(term).Round(time.Millisecond), time.Since(read).Round(time.Millisecond))
}
