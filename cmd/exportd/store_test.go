package main

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"
)

// TestStoreChosenByConfig parses the worker's flags from EXPORTD_*
// variables, as docker-compose sets them, and checks that the s3 backend
// writes to an S3-protocol server (gofakes3, in process) and the local one
// to its directory.
func TestStoreChosenByConfig(t *testing.T) {
	backend := s3mem.New()
	require.NoError(t, backend.CreateBucket("exports"))
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	defer srv.Close()

	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"s3", map[string]string{
			"EXPORTD_BLOB_BACKEND": "s3", "EXPORTD_S3_ENDPOINT": strings.TrimPrefix(srv.URL, "http://"),
			"EXPORTD_S3_BUCKET": "exports", "EXPORTD_S3_ACCESS_KEY": "test", "EXPORTD_S3_SECRET_KEY": "testsecret",
			"EXPORTD_S3_USE_SSL": "false",
		}},
		{"local", map[string]string{"EXPORTD_BLOB_DIR": t.TempDir()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFlags("worker", io.Discard)
			var c conn
			c.register(fs, true, true)
			require.NoError(t, parse(fs, nil, func(k string) string { return tc.env[k] }))
			ctx := context.Background()
			st, closeStore, err := c.store(ctx)
			require.NoError(t, err)
			defer closeStore()
			up, err := st.Create(ctx, "exp1/orders-00000.csv.gz", "attempt1")
			require.NoError(t, err)
			_, err = up.Write([]byte("hello"))
			require.NoError(t, err)
			require.NoError(t, up.Commit())
			obj, err := st.Open(ctx, "exp1/orders-00000.csv.gz")
			require.NoError(t, err)
			b, err := io.ReadAll(obj)
			require.NoError(t, err)
			obj.Close()
			require.Equal(t, "hello", string(b))
			if tc.name == "s3" {
				o, err := backend.GetObject("exports", "exp1/orders-00000.csv.gz", nil)
				require.NoError(t, err, "the object is in the S3 server's bucket")
				o.Contents.Close()
			}
		})
	}
	fs := newFlags("worker", io.Discard)
	var c conn
	c.register(fs, true, true)
	require.NoError(t, parse(fs, []string{"--blob-backend", "ftp"}, func(string) string { return "" }))
	_, _, err := c.store(context.Background())
	require.ErrorContains(t, err, "local or s3")
}
