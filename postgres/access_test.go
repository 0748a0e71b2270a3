package postgres_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/postgres/pgtest"
	"github.com/stretchr/testify/require"
)

func newAccess(t *testing.T) *postgres.Access {
	t.Helper()
	key := make([]byte, postgres.MasterKeySize)
	rand.Read(key)
	sealer, err := postgres.NewSealer(key)
	require.NoError(t, err)
	return &postgres.Access{Pool: pgtest.New(t), Sealer: sealer}
}

func addMerchants(t *testing.T, a *postgres.Access, ids ...string) {
	t.Helper()
	for _, id := range ids {
		_, err := a.Pool.Exec(context.Background(), `INSERT INTO merchants (id, name, timezone, currency)
			VALUES ($1, $1, 'UTC', 'USD')`, id)
		require.NoError(t, err)
	}
}

func TestAccessAPIKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newAccess(t)
	app, err := a.CreateApp(ctx, "Reports, Inc.")
	require.NoError(t, err)
	key, err := a.CreateAPIKey(ctx, app.ID)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(key.Key, postgres.APIKeyPrefix))

	got, err := a.AppByAPIKey(ctx, key.Key)
	require.NoError(t, err)
	require.Equal(t, app.App, got)

	// Only the hash is stored.
	var hashes, plain int
	require.NoError(t, a.Pool.QueryRow(ctx, `SELECT count(*) FROM api_keys WHERE key_hash = sha256($1::bytea)`,
		[]byte(key.Key)).Scan(&hashes))
	require.Equal(t, 1, hashes)
	require.NoError(t, a.Pool.QueryRow(ctx, `SELECT count(*) FROM api_keys k WHERE strpos(encode(k.key_hash, 'escape'), $1) > 0
		OR strpos(k::text, $1) > 0`, key.Key).Scan(&plain))
	require.Zero(t, plain)

	for _, bad := range []string{"", "exk_", key.Key + "x", key.Key[:len(key.Key)-1] + "a", strings.ToUpper(key.Key)} {
		if bad == key.Key {
			continue
		}
		_, err := a.AppByAPIKey(ctx, bad)
		require.ErrorIs(t, err, postgres.ErrNotFound, bad)
	}

	// Revoked keys stop working; other keys of the app do not.
	other, err := a.CreateAPIKey(ctx, app.ID)
	require.NoError(t, err)
	require.NoError(t, a.RevokeAPIKey(ctx, key.ID))
	require.NoError(t, a.RevokeAPIKey(ctx, key.ID), "revoking twice is a no-op")
	_, err = a.AppByAPIKey(ctx, key.Key)
	require.ErrorIs(t, err, postgres.ErrNotFound)
	_, err = a.AppByAPIKey(ctx, other.Key)
	require.NoError(t, err)

	keys, err := a.APIKeys(ctx, app.ID)
	require.NoError(t, err)
	require.Len(t, keys, 2)
	for _, k := range keys {
		require.Empty(t, k.Key)
		require.Equal(t, k.ID == key.ID, k.RevokedAt != nil)
	}

	require.ErrorIs(t, a.RevokeAPIKey(ctx, "key_nope"), postgres.ErrNotFound)
	_, err = a.CreateAPIKey(ctx, "app_nope")
	require.ErrorIs(t, err, postgres.ErrNotFound)
}

func TestAccessInstallIsolation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newAccess(t)
	addMerchants(t, a, "m1", "m2")
	one, err := a.CreateApp(ctx, "one")
	require.NoError(t, err)
	two, err := a.CreateApp(ctx, "two")
	require.NoError(t, err)
	require.NoError(t, a.Install(ctx, one.ID, "m1"))
	require.NoError(t, a.Install(ctx, one.ID, "m1"), "installing twice is a no-op")
	require.NoError(t, a.Install(ctx, two.ID, "m2"))

	for _, tc := range []struct {
		app, merchant string
		want          bool
	}{
		{one.ID, "m1", true}, {one.ID, "m2", false}, {two.ID, "m1", false}, {two.ID, "m2", true},
		{"app_nope", "m1", false}, {one.ID, "nope", false},
	} {
		got, err := a.Installed(ctx, tc.app, tc.merchant)
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "%s on %s", tc.app, tc.merchant)
	}
	ms, err := a.InstalledMerchants(ctx, one.ID)
	require.NoError(t, err)
	require.Equal(t, []string{"m1"}, ms)

	require.ErrorIs(t, a.Install(ctx, one.ID, "nope"), postgres.ErrNotFound)
	require.ErrorIs(t, a.Install(ctx, "app_nope", "m1"), postgres.ErrNotFound)
}

func TestAccessClientSecret(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newAccess(t)
	app, err := a.CreateApp(ctx, "hmac")
	require.NoError(t, err)
	require.NotEmpty(t, app.ClientSecret)

	got, err := a.AppByClientID(ctx, app.ClientID)
	require.NoError(t, err)
	require.Equal(t, app, got)
	got, err = a.AppByID(ctx, app.ID)
	require.NoError(t, err)
	require.Equal(t, app, got)

	// The stored value is ciphertext.
	var stored []byte
	require.NoError(t, a.Pool.QueryRow(ctx, "SELECT client_secret_enc FROM apps WHERE id = $1", app.ID).Scan(&stored))
	require.NotEqual(t, []byte(app.ClientSecret), stored)
	require.False(t, bytes.Contains(stored, []byte(app.ClientSecret)))

	verified, err := a.VerifyClientSecret(ctx, app.ClientID, app.ClientSecret)
	require.NoError(t, err)
	require.Equal(t, app.App, verified)
	_, err = a.VerifyClientSecret(ctx, app.ClientID, app.ClientSecret+"x")
	require.ErrorIs(t, err, postgres.ErrNotFound)
	_, err = a.VerifyClientSecret(ctx, "cli_nope", app.ClientSecret)
	require.ErrorIs(t, err, postgres.ErrNotFound)
	_, err = a.AppByClientID(ctx, "cli_nope")
	require.ErrorIs(t, err, postgres.ErrNotFound)

	// Another master key cannot open it, and says so rather than returning
	// garbage.
	wrong := make([]byte, postgres.MasterKeySize)
	rand.Read(wrong)
	sealer, err := postgres.NewSealer(wrong)
	require.NoError(t, err)
	other := &postgres.Access{Pool: a.Pool, Sealer: sealer}
	_, err = other.AppByClientID(ctx, app.ClientID)
	require.ErrorContains(t, err, "wrong master key")
	require.NotErrorIs(t, err, postgres.ErrNotFound)

	// A sealed secret moved to another app's row does not open there.
	second, err := a.CreateApp(ctx, "second")
	require.NoError(t, err)
	_, err = a.Pool.Exec(ctx, "UPDATE apps SET client_secret_enc = $1 WHERE id = $2", stored, second.ID)
	require.NoError(t, err)
	_, err = a.AppByID(ctx, second.ID)
	require.Error(t, err)
}

func TestAccessListings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newAccess(t)
	addMerchants(t, a, "m2", "m1")
	ms, err := a.Merchants(ctx)
	require.NoError(t, err)
	require.Equal(t, []postgres.Merchant{{ID: "m1", Name: "m1", Timezone: "UTC", Currency: "USD"},
		{ID: "m2", Name: "m2", Timezone: "UTC", Currency: "USD"}}, ms)
	m, err := a.Merchant(ctx, "m2")
	require.NoError(t, err)
	require.Equal(t, ms[1], m)
	_, err = a.Merchant(ctx, "nope")
	require.ErrorIs(t, err, postgres.ErrNotFound)

	x, err := a.CreateApp(ctx, "x")
	require.NoError(t, err)
	y, err := a.CreateApp(ctx, "y")
	require.NoError(t, err)
	apps, err := a.Apps(ctx)
	require.NoError(t, err)
	require.ElementsMatch(t, []postgres.App{x.App, y.App}, apps)
}

func TestSealer(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, 32)
	s, err := postgres.NewSealer(key)
	require.NoError(t, err)
	sealed := s.Seal([]byte("secret"), []byte("ctx"))
	require.NotEqual(t, sealed, s.Seal([]byte("secret"), []byte("ctx")), "nonces differ")
	plain, err := s.Open(sealed, []byte("ctx"))
	require.NoError(t, err)
	require.Equal(t, "secret", string(plain))
	_, err = s.Open(sealed, []byte("other"))
	require.Error(t, err)
	sealed[len(sealed)-1] ^= 1
	_, err = s.Open(sealed, []byte("ctx"))
	require.Error(t, err)
	_, err = s.Open(nil, nil)
	require.Error(t, err)

	_, err = postgres.NewSealer(key[:16])
	require.Error(t, err)

	for _, enc := range []string{
		"0707070707070707070707070707070707070707070707070707070707070707",
		"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=",
		"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc",
	} {
		got, err := postgres.ParseMasterKey(enc)
		require.NoError(t, err, enc)
		require.Equal(t, key, got)
	}
	_, err = postgres.ParseMasterKey("too-short")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "too-short", "keys stay out of errors")
}
