package exports_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/exports"
	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestCreateUnqueuesAnExportThatDidNotStart: the API enqueues an export,
// then its workflow cannot start (Temporal accepts connections but never
// answers) before the request's deadline has passed. The export's queue place must still be
// given back, or it would wait ahead of every later export.
func TestCreateUnqueuesAnExportThatDidNotStart(t *testing.T) {
	pool := pgtest.New(t)
	setup := context.Background()
	sealer, err := postgres.NewSealer(make([]byte, 32))
	require.NoError(t, err)
	access := &postgres.Access{Pool: pool, Sealer: sealer}
	_, err = pool.Exec(setup, "INSERT INTO merchants (id, name, timezone, currency) VALUES ('m1', 'm1', 'UTC', 'USD')")
	require.NoError(t, err)
	app, err := access.CreateApp(setup, "app")
	require.NoError(t, err)
	require.NoError(t, access.Install(setup, app.ID, "m1"))

	// A real client of a Temporal frontend that hangs: connections are
	// accepted and never answered.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	c, err := client.NewLazyClient(client.Options{HostPort: ln.Addr().String()})
	require.NoError(t, err)
	defer c.Close()

	q := &postgres.Queue{Pool: pool}
	var logs bytes.Buffer
	svc := &exports.Service{Temporal: c, Access: access, Queue: q, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	spec := exportd.Spec{MerchantID: "m1", Dataset: exportd.Orders, Formats: []exportd.Format{exportd.CSV},
		Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _, err = svc.Create(ctx, app.App, spec, "")
	require.Error(t, err, "the workflow could not start")
	require.Error(t, ctx.Err(), "the start failed because the request ended: %v", err)

	n, err := q.Waiting(setup)
	require.NoError(t, err)
	require.Zero(t, n, "the export's queue place was given back although its request had ended (ctx: %v); log: %s", ctx.Err(), logs.String())
}
