package postgres_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd/postgres"
)

// TestAccessHostileLookups: ids from requests that PostgreSQL cannot hold
// in a text column (NUL bytes, invalid UTF-8) find nothing, like any
// other unknown id, instead of failing the query, which the API would
// answer with a 500.
func TestAccessHostileLookups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newAccess(t)
	addMerchants(t, a, "m1")
	app, err := a.CreateApp(ctx, "hostile")
	require.NoError(t, err)
	require.NoError(t, a.Install(ctx, app.ID, "m1"))

	for _, bad := range []string{"\x00", "m1\x00", "\xff\xfe", "m\xc0\xae1", app.ID + "\x00", app.ClientID + "\xff"} {
		ok, err := a.Installed(ctx, app.ID, bad)
		require.NoError(t, err, "%q", bad)
		require.False(t, ok)
		ok, err = a.Installed(ctx, bad, "m1")
		require.NoError(t, err, "%q", bad)
		require.False(t, ok)

		ids, err := a.InstalledMerchants(ctx, bad)
		require.NoError(t, err, "%q", bad)
		require.Empty(t, ids)

		_, err = a.AppByID(ctx, bad)
		require.ErrorIs(t, err, postgres.ErrNotFound, "%q", bad)
		_, err = a.AppByClientID(ctx, bad)
		require.ErrorIs(t, err, postgres.ErrNotFound, "%q", bad)
		_, err = a.VerifyClientSecret(ctx, bad, app.ClientSecret)
		require.ErrorIs(t, err, postgres.ErrNotFound, "%q", bad)
		_, err = a.AppByAPIKey(ctx, bad)
		require.ErrorIs(t, err, postgres.ErrNotFound, "%q", bad)
		_, err = a.Merchant(ctx, bad)
		require.ErrorIs(t, err, postgres.ErrNotFound, "%q", bad)

		locs, err := a.LocationsByClassifier(ctx, bad, []string{"restaurant"})
		require.NoError(t, err, "%q", bad)
		require.Empty(t, locs)
		locs, err = a.LocationsByClassifier(ctx, "m1", []string{bad})
		require.NoError(t, err, "%q", bad)
		require.Empty(t, locs)
	}

	// Good ids still work.
	ok, err := a.Installed(ctx, app.ID, "m1")
	require.NoError(t, err)
	require.True(t, ok)
	got, err := a.AppByID(ctx, app.ID)
	require.NoError(t, err)
	require.Equal(t, app, got)
}
