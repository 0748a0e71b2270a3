package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Access stores the apps that may export data, their API keys and the
// merchants that installed them. Keys are kept only as hashes; client
// secrets, which the HMAC and JWT dialects need in the clear, are sealed
// under the master key.
type Access struct {
	Pool   *pgxpool.Pool
	Sealer *Sealer
}

// App is a client of the service.
type App struct {
	ID        string
	Name      string
	ClientID  string
	CreatedAt time.Time
}

// AppCredentials is an app with its client secret in the clear.
type AppCredentials struct {
	App
	ClientSecret string
}

// APIKey is an app's API key. Key, the key itself, is set only by
// CreateAPIKey: afterwards only its hash exists.
type APIKey struct {
	ID        string
	AppID     string
	Key       string
	CreatedAt time.Time
	RevokedAt *time.Time
}

// Merchant is a merchant whose data can be exported.
type Merchant struct {
	ID       string
	Name     string
	Timezone string
	Currency string
}

// APIKeyPrefix starts every API key, so that leaked keys are recognisable
// to secret scanners and malformed ones are refused without a query.
const APIKeyPrefix = "exk_"

var token = base32.StdEncoding.WithPadding(base32.NoPadding)

// randomToken returns prefix and n random bytes in lower-case base32.
func randomToken(prefix string, n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails since Go 1.24
	return prefix + strings.ToLower(token.EncodeToString(b))
}

// apiKeyLen is the length of every key CreateAPIKey makes.
var apiKeyLen = len(randomToken(APIKeyPrefix, 32))

// storable reports whether PostgreSQL can compare s with a text column:
// valid UTF-8 without NUL. A value that is not cannot name a row, so a
// lookup by one finds nothing instead of failing with an error that
// would be a 500 for what is only bad input.
func storable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

func hashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// secretContext binds a sealed client secret to its app.
func secretContext(appID string) []byte { return []byte("exportd app client secret " + appID) }

// CreateApp registers an app with a new client id and secret; the result is
// the only time the caller learns the secret from this call.
func (a *Access) CreateApp(ctx context.Context, name string) (AppCredentials, error) {
	c := AppCredentials{
		App: App{
			ID:       randomToken("app_", 10),
			Name:     name,
			ClientID: randomToken("cli_", 15),
		},
		ClientSecret: randomToken("exs_", 32),
	}
	sealed := a.Sealer.Seal([]byte(c.ClientSecret), secretContext(c.ID))
	err := a.Pool.QueryRow(ctx, `INSERT INTO apps (id, name, client_id, client_secret_enc) VALUES ($1, $2, $3, $4)
		RETURNING created_at`, c.ID, c.Name, c.ClientID, sealed).Scan(&c.CreatedAt)
	if err != nil {
		return AppCredentials{}, fmt.Errorf("error creating app: %w", err)
	}
	c.CreatedAt = c.CreatedAt.UTC()
	return c, nil
}

// CreateAPIKey makes a new key for an app. The returned Key is the only
// copy: the database keeps its SHA-256.
func (a *Access) CreateAPIKey(ctx context.Context, appID string) (APIKey, error) {
	k := APIKey{ID: randomToken("key_", 10), AppID: appID, Key: randomToken(APIKeyPrefix, 32)}
	err := a.Pool.QueryRow(ctx, `INSERT INTO api_keys (id, app_id, key_hash) VALUES ($1, $2, $3) RETURNING created_at`,
		k.ID, appID, hashKey(k.Key)).Scan(&k.CreatedAt)
	if isForeignKeyViolation(err) {
		return APIKey{}, fmt.Errorf("app %s: %w", appID, ErrNotFound)
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("error creating api key: %w", err)
	}
	k.CreatedAt = k.CreatedAt.UTC()
	return k, nil
}

// AppByAPIKey returns the app a key belongs to, or ErrNotFound for an
// unknown, malformed or revoked key. The lookup is by hash, so the time it
// takes says nothing about how close a guess came.
func (a *Access) AppByAPIKey(ctx context.Context, key string) (App, error) {
	if len(key) != apiKeyLen || !strings.HasPrefix(key, APIKeyPrefix) {
		return App{}, fmt.Errorf("api key: %w", ErrNotFound)
	}
	app, err := scanApp(a.Pool.QueryRow(ctx, `SELECT a.id, a.name, a.client_id, a.created_at
		FROM api_keys k JOIN apps a ON a.id = k.app_id
		WHERE k.key_hash = $1 AND k.revoked_at IS NULL`, hashKey(key)))
	if errors.Is(err, pgx.ErrNoRows) {
		return App{}, fmt.Errorf("api key: %w", ErrNotFound)
	}
	if err != nil {
		return App{}, fmt.Errorf("error looking up api key: %w", err)
	}
	return app, nil
}

// APIKeys lists an app's keys, revoked ones included, without the keys.
func (a *Access) APIKeys(ctx context.Context, appID string) ([]APIKey, error) {
	rows, err := a.Pool.Query(ctx, `SELECT id, app_id, created_at, revoked_at FROM api_keys WHERE app_id = $1
		ORDER BY created_at, id`, appID)
	if err != nil {
		return nil, fmt.Errorf("error listing api keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (APIKey, error) {
		var k APIKey
		err := row.Scan(&k.ID, &k.AppID, &k.CreatedAt, &k.RevokedAt)
		k.CreatedAt = k.CreatedAt.UTC()
		if k.RevokedAt != nil {
			*k.RevokedAt = k.RevokedAt.UTC()
		}
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("error listing api keys: %w", err)
	}
	return keys, nil
}

// RevokeAPIKey stops a key from authenticating, from now on. Revoking a
// revoked key is a no-op; an unknown id is ErrNotFound.
func (a *Access) RevokeAPIKey(ctx context.Context, keyID string) error {
	tag, err := a.Pool.Exec(ctx, "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1", keyID)
	if err != nil {
		return fmt.Errorf("error revoking api key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("api key %s: %w", keyID, ErrNotFound)
	}
	return nil
}

// Install lets an app export a merchant's data. It is idempotent; an
// unknown app or merchant is ErrNotFound.
func (a *Access) Install(ctx context.Context, appID, merchantID string) error {
	_, err := a.Pool.Exec(ctx, "INSERT INTO installs (app_id, merchant_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
		appID, merchantID)
	if isForeignKeyViolation(err) {
		return fmt.Errorf("app %s or merchant %s: %w", appID, merchantID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("error installing app: %w", err)
	}
	return nil
}

// Installed reports whether a merchant installed an app: the check behind
// every request that names a merchant.
func (a *Access) Installed(ctx context.Context, appID, merchantID string) (bool, error) {
	if !storable(appID) || !storable(merchantID) {
		return false, nil
	}
	var ok bool
	err := a.Pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM installs WHERE app_id = $1 AND merchant_id = $2)",
		appID, merchantID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("error checking install: %w", err)
	}
	return ok, nil
}

// InstalledMerchants lists the ids of the merchants that installed an app.
func (a *Access) InstalledMerchants(ctx context.Context, appID string) ([]string, error) {
	if !storable(appID) {
		return nil, nil
	}
	rows, err := a.Pool.Query(ctx, "SELECT merchant_id FROM installs WHERE app_id = $1 ORDER BY merchant_id", appID)
	if err != nil {
		return nil, fmt.Errorf("error listing installs: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("error listing installs: %w", err)
	}
	return ids, nil
}

// AppByClientID returns an app with its secret in the clear, as
// VerifyClientSecret needs it; ErrNotFound when unknown.
func (a *Access) AppByClientID(ctx context.Context, clientID string) (AppCredentials, error) {
	return a.credentials(ctx, "client_id", clientID)
}

// AppByID returns an app with its secret in the clear; ErrNotFound when
// unknown.
func (a *Access) AppByID(ctx context.Context, appID string) (AppCredentials, error) {
	return a.credentials(ctx, "id", appID)
}

func (a *Access) credentials(ctx context.Context, column, value string) (AppCredentials, error) {
	if !storable(value) {
		return AppCredentials{}, fmt.Errorf("app: %w", ErrNotFound)
	}
	var c AppCredentials
	var sealed []byte
	err := a.Pool.QueryRow(ctx, "SELECT id, name, client_id, created_at, client_secret_enc FROM apps WHERE "+column+" = $1",
		value).Scan(&c.ID, &c.Name, &c.ClientID, &c.CreatedAt, &sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return AppCredentials{}, fmt.Errorf("app: %w", ErrNotFound)
	}
	if err != nil {
		return AppCredentials{}, fmt.Errorf("error looking up app: %w", err)
	}
	c.CreatedAt = c.CreatedAt.UTC()
	secret, err := a.Sealer.Open(sealed, secretContext(c.ID))
	if err != nil {
		return AppCredentials{}, fmt.Errorf("error decrypting secret of app %s: %w", c.ID, err)
	}
	c.ClientSecret = string(secret)
	return c, nil
}

// VerifyClientSecret checks a client id and secret pair, as the OAuth
// client-credentials grant does, in constant time. A wrong secret and an
// unknown client both give ErrNotFound, so neither can be probed for.
func (a *Access) VerifyClientSecret(ctx context.Context, clientID, secret string) (App, error) {
	c, err := a.AppByClientID(ctx, clientID)
	if err != nil {
		return App{}, err
	}
	// Comparing hashes keeps the length of the secret out of the timing.
	if subtle.ConstantTimeCompare(hashKey(c.ClientSecret), hashKey(secret)) != 1 {
		return App{}, fmt.Errorf("app: %w", ErrNotFound)
	}
	return c.App, nil
}

// Apps lists all apps, oldest first.
func (a *Access) Apps(ctx context.Context) ([]App, error) {
	rows, err := a.Pool.Query(ctx, "SELECT id, name, client_id, created_at FROM apps ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("error listing apps: %w", err)
	}
	apps, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (App, error) { return scanApp(row) })
	if err != nil {
		return nil, fmt.Errorf("error listing apps: %w", err)
	}
	return apps, nil
}

// Merchant returns a merchant, or ErrNotFound.
func (a *Access) Merchant(ctx context.Context, id string) (Merchant, error) {
	if !storable(id) {
		return Merchant{}, fmt.Errorf("merchant: %w", ErrNotFound)
	}
	var m Merchant
	err := a.Pool.QueryRow(ctx, "SELECT id, name, timezone, currency FROM merchants WHERE id = $1", id).
		Scan(&m.ID, &m.Name, &m.Timezone, &m.Currency)
	if errors.Is(err, pgx.ErrNoRows) {
		return Merchant{}, fmt.Errorf("merchant %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Merchant{}, fmt.Errorf("error looking up merchant: %w", err)
	}
	return m, nil
}

// Merchants lists all merchants by id.
func (a *Access) Merchants(ctx context.Context) ([]Merchant, error) {
	rows, err := a.Pool.Query(ctx, "SELECT id, name, timezone, currency FROM merchants ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("error listing merchants: %w", err)
	}
	ms, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Merchant])
	if err != nil {
		return nil, fmt.Errorf("error listing merchants: %w", err)
	}
	return ms, nil
}

func scanApp(row pgx.Row) (App, error) {
	var app App
	err := row.Scan(&app.ID, &app.Name, &app.ClientID, &app.CreatedAt)
	app.CreatedAt = app.CreatedAt.UTC()
	return app, err
}

func isForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}
