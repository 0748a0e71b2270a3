package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestSecretsNeverLogged runs the dev stack at debug level and uses every
// credential of every dialect, rightly and wrongly: API keys as bearer
// tokens, in X-API-Key and in ?access_token=, Doshii's HMAC and JWT,
// Elastic Path client secrets and access tokens, and signed URLs. None of
// them may appear in any log, nor anywhere in the data dir but dev.json,
// and the database holds keys only as hashes and secrets only sealed.
// A separate `exportd api`, which unlike dev allows no private webhook
// destinations, refuses callback URLs on loopback, link-local and private
// addresses, and its log is searched too.
func TestSecretsNeverLogged(t *testing.T) {
	s := startDev(t, "--seed-orders", "300", "--log-level", "debug")
	apps := devApps(t, s)
	a, b := apps[0], apps[1]
	secrets := map[string]string{"master key": s.Env["EXPORTD_MASTER_KEY"]}
	for _, x := range apps {
		secrets[x.Name+" api key"] = x.APIKey
		secrets[x.Name+" client secret"] = x.ClientSecret
	}
	// Wrong credentials must not be logged either: they are often a typo
	// away from right ones.
	nearKey := a.APIKey[:len(a.APIKey)-1] + flip(a.APIKey[len(a.APIKey)-1])
	nearSecret := a.ClientSecret[:len(a.ClientSecret)-1] + flip(a.ClientSecret[len(a.ClientSecret)-1])
	secrets["near-miss api key"], secrets["near-miss client secret"] = nearKey, nearSecret
	ok := func(r rawResp, status int, what string) {
		t.Helper()
		require.Equal(t, status, r.status, "%s: %s", what, r.body)
	}
	api := s.APIURL

	// Native: bearer, X-API-Key; a download by key and by signed URL.
	id := createIn(t, s, "native", a, a.Merchants[0], "")
	doc, _ := waitFor(t, s, a.APIKey, id)
	require.Equal(t, "succeeded", doc.Status)
	ok(doRaw(t, "GET", api+"/v1/exports?merchantId="+a.Merchants[0], http.Header{"X-Api-Key": {a.APIKey}}, nil), 200, "list by X-API-Key")
	var files struct {
		Files []struct{ Name, URL, SignedURL string } `json:"files"`
	}
	r := doRaw(t, "GET", api+"/v1/exports/"+id, bearerHdr(a.APIKey), nil)
	require.NoError(t, json.Unmarshal(r.body, &files))
	ok(doRaw(t, "GET", files.Files[0].URL, bearerHdr(a.APIKey), nil), 200, "download by key")
	ok(doRaw(t, "GET", files.Files[0].SignedURL, nil, nil), 200, "download by signed URL")
	su, err := url.Parse(files.Files[0].SignedURL)
	require.NoError(t, err)
	secrets["signed URL signature"] = su.Query().Get("signature")
	ok(doRaw(t, "GET", files.Files[0].URL+"?expires=1&signature="+url.QueryEscape(nearSecret), nil, nil), 401, "forged signature")
	ok(doRaw(t, "GET", api+"/v1/exports/"+id, bearerHdr(nearKey), nil), 401, "near-miss key")
	ok(doRaw(t, "GET", api+"/v1/exports/"+id, http.Header{"X-Api-Key": {nearKey}}, nil), 401, "near-miss X-API-Key")
	ok(doRaw(t, "GET", api+"/v1/exports/"+id+"?access_token="+a.APIKey, nil, nil), 401, "no native access_token")

	// Clover: bearer and ?access_token=, right and wrong.
	clover := api + "/v3/merchants/" + a.Merchants[0] + "/exports"
	ok(doRaw(t, "GET", clover, bearerHdr(a.APIKey), nil), 200, "clover bearer")
	ok(doRaw(t, "GET", clover+"?access_token="+a.APIKey, nil, nil), 200, "clover access_token")
	ok(doRaw(t, "POST", clover+"?access_token="+a.APIKey, nil, []byte(`{"type": "ORDERS", "startTime": "1740787200000", "endTime": 1740873600000}`)), 200, "clover create")
	ok(doRaw(t, "GET", clover+"?access_token="+nearKey, nil, nil), 401, "clover wrong access_token")
	ok(doRaw(t, "GET", clover+"/"+id+"?access_token="+b.APIKey, nil, nil), 404, "clover other app's token")

	// Doshii: HMAC and JWT, right, stale, and made with a wrong secret.
	dh := doshiiHeaders(a, time.Now())
	secrets["doshii JWT"] = strings.TrimPrefix(dh.Get("Authorization"), "Bearer ")
	secrets["doshii X-API-KEY"] = dh.Get("X-Api-Key")
	did := createIn(t, s, "doshii", a, a.Merchants[0], "")
	ok(doRaw(t, "GET", api+"/partner/v3/data/orders/"+did, dh, nil), 200, "doshii status")
	stale := doshiiHeaders(a, time.Now().Add(-time.Hour))
	secrets["stale doshii JWT"] = strings.TrimPrefix(stale.Get("Authorization"), "Bearer ")
	ok(doRaw(t, "GET", api+"/partner/v3/data/orders/"+did, stale, nil), 401, "stale JWT")
	wrong := doshiiHeaders(devApp{AppID: a.AppID, ClientID: a.ClientID, ClientSecret: nearSecret}, time.Now())
	secrets["wrong-secret doshii JWT"] = strings.TrimPrefix(wrong.Get("Authorization"), "Bearer ")
	secrets["wrong-secret doshii X-API-KEY"] = wrong.Get("X-Api-Key")
	ok(doRaw(t, "GET", api+"/partner/v3/data/orders/"+did, wrong, nil), 401, "wrong-secret HMAC")

	// Elastic Path: form, JSON and Basic credentials, then the token.
	tok := epToken(t, s, a, "")
	secrets["ep access token"] = tok
	ok(doRaw(t, "GET", api+"/v2/jobs", bearerHdr(tok), nil), 200, "ep list")
	ok(doRaw(t, "POST", api+"/v2/jobs", bearerHdr(tok), []byte(`{"data": {"type": "job", "job_type": "order_export", "filter": "ge(created_at,2025-03-01):lt(created_at,2025-03-02)"}}`)), 201, "ep create")
	ok(doRaw(t, "GET", api+"/v2/jobs", bearerHdr(tok[:len(tok)-2]), nil), 401, "truncated ep token")
	jsonCreds, _ := json.Marshal(map[string]string{"grant_type": "client_credentials", "client_id": b.ClientID, "client_secret": b.ClientSecret})
	ok(doRaw(t, "POST", api+"/oauth/access_token", http.Header{"Content-Type": {"application/json"}}, jsonCreds), 200, "ep JSON credentials")
	basic, err := http.NewRequest("POST", api+"/oauth/access_token", strings.NewReader("grant_type=client_credentials"))
	require.NoError(t, err)
	basic.SetBasicAuth(a.ClientID, a.ClientSecret)
	ok(doRaw(t, "POST", api+"/oauth/access_token", basic.Header, []byte("grant_type=client_credentials")), 200, "ep Basic credentials")
	nearForm := url.Values{"grant_type": {"client_credentials"}, "client_id": {a.ClientID}, "client_secret": {nearSecret}}
	ok(doRaw(t, "POST", api+"/oauth/access_token", nil, []byte(nearForm.Encode())), 401, "ep wrong secret")

	// `exportd api` on the same stack, without --webhook-allow-private.
	apiURL, apiLog := startAPIOnly(t, s)
	ssrfRefused(t, apiURL, s, a)
	ok(doRaw(t, "GET", apiURL+"/v3/merchants/"+a.Merchants[0]+"/exports?access_token="+a.APIKey, nil, nil), 200, "api-only clover access_token")
	ok(doRaw(t, "GET", apiURL+"/v1/exports/"+id, bearerHdr(nearKey), nil), 401, "api-only near-miss key")
	ok(doRaw(t, "GET", apiURL+"/partner/v3/data/orders/"+did, doshiiHeaders(a, time.Now()), nil), 200, "api-only doshii")

	// Dev, unlike api, delivers to loopback, where a developer's receiver
	// runs.
	hooked := make(chan struct{}, 1)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case hooked <- struct{}{}:
		default:
		}
	}))
	defer recv.Close()
	// A token in the callback URL is the client's secret: kept in the
	// workflow input, where delivery needs it, but never logged.
	hookToken := "hooktoken-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	body := `{"merchantId": "` + a.Merchants[0] + `", "dataset": "orders", "start": "2025-03-01T00:00:00Z", "end": "2025-03-02T00:00:00Z", "callbackUrl": "` + recv.URL + `/hook?token=` + hookToken + `"}`
	ok(doRaw(t, "POST", api+"/v1/exports", bearerHdr(a.APIKey), []byte(body)), 202, "dev accepts a loopback callback")
	select {
	case <-hooked:
	case <-time.After(time.Minute):
		t.Fatal("no webhook delivered to loopback in dev")
	}

	// Logs: the dev stack's log file, its terminal output, the api's
	// output, and every other log in the data dir.
	logs := map[string][]byte{"exportd api output": apiLog()}
	require.NoError(t, filepath.WalkDir(s.dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if name := d.Name(); name == "dev.json" || name == "dev.json.tmp" || name == "master.key" {
			return nil // where the credentials are handed to the developer
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil // a file PostgreSQL or Temporal is replacing
		}
		logs[path] = b
		return nil
	}))
	require.Contains(t, logs, filepath.Join(s.dataDir, "exportd.log"))
	require.Contains(t, string(logs[filepath.Join(s.dataDir, "exportd.log")]), "level=DEBUG", "the stack logs at debug level")
	for where, b := range logs {
		for what, secret := range secrets {
			require.NotEmpty(t, secret, what)
			require.False(t, bytes.Contains(b, []byte(secret)), "%s found in %s", what, where)
		}
		if strings.HasSuffix(where, ".log") || where == "exportd api output" {
			require.False(t, bytes.Contains(b, []byte(hookToken)), "the callback URL's token found in %s", where)
		}
	}

	// The database holds API keys only as sha256 and client secrets only
	// sealed: no table holds any of them in the clear.
	ctx := context.Background()
	db, err := pgx.Connect(ctx, s.DatabaseURL)
	require.NoError(t, err)
	defer db.Close(ctx)
	for _, x := range apps {
		var n int
		sum := sha256.Sum256([]byte(x.APIKey))
		require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM api_keys k JOIN apps a ON a.id = k.app_id
			WHERE a.id = $1 AND k.key_hash = $2`, x.AppID, sum[:]).Scan(&n))
		require.Equal(t, 1, n, "%s's key is stored as its sha256", x.Name)
		var sealed []byte
		require.NoError(t, db.QueryRow(ctx, `SELECT client_secret_enc FROM apps WHERE id = $1`, x.AppID).Scan(&sealed))
		require.NotEqual(t, []byte(x.ClientSecret), sealed)
		require.False(t, bytes.Contains(sealed, []byte(x.ClientSecret)), "%s's secret is sealed", x.Name)
		require.Greater(t, len(sealed), len(x.ClientSecret), "nonce and tag")
	}
	tables, err := db.Query(ctx, `SELECT quote_ident(table_name) FROM information_schema.tables
		WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`)
	require.NoError(t, err)
	names, err := pgx.CollectRows(tables, pgx.RowTo[string])
	require.NoError(t, err)
	require.Contains(t, names, "api_keys")
	for _, table := range names {
		for what, secret := range secrets {
			var n int
			require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM `+table+` t
				WHERE strpos(t::text, $1) > 0 OR strpos(encode(convert_to(t::text, 'UTF8'), 'hex'), encode(convert_to($1, 'UTF8'), 'hex')) > 0`, secret).Scan(&n))
			require.Zero(t, n, "%s in the clear in table %s", what, table)
		}
	}
}

// flip changes a base32 character into another one.
func flip(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

// ssrfRefused: `exportd api` refuses callback URLs on loopback,
// link-local and private addresses, natively and in the Doshii dialect.
func ssrfRefused(t *testing.T, apiURL string, s *stack, a devApp) {
	t.Helper()
	for _, cb := range []string{
		"http://127.0.0.1/hook", "http://127.0.0.1:8080/x", "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/",
		"http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://10.0.0.1/", "http://172.16.0.1/",
		"http://192.168.1.1/", "http://100.64.0.1/", "http://[fd00::1]/", "http://0x7f000001/", "http://2130706433/", "http://127.1/",
	} {
		body := `{"merchantId": "` + a.Merchants[0] + `", "dataset": "orders", "start": "2025-03-01T00:00:00Z", "end": "2025-03-02T00:00:00Z", "callbackUrl": "` + cb + `"}`
		r := doRaw(t, "POST", apiURL+"/v1/exports", bearerHdr(a.APIKey), []byte(body))
		require.Equal(t, http.StatusBadRequest, r.status, "%s: %s", cb, r.body)
		var p problem
		require.NoError(t, json.Unmarshal(r.body, &p))
		require.Equal(t, "callbackUrl", p.Field, cb)

		body = `{"doshiiId": "` + a.Merchants[0] + `", "range": {"start": 1740787200, "end": 1740873600}, "webhook": {"url": "` + cb + `"}}`
		r = doRaw(t, "POST", apiURL+"/partner/v3/data/orders", doshiiHeaders(a, time.Now()), []byte(body))
		require.Equal(t, http.StatusBadRequest, r.status, "doshii %s: %s", cb, r.body)
		require.Contains(t, string(r.body), "webhook.url", cb)
	}
}

// startAPIOnly runs `exportd api` against the stack's PostgreSQL,
// Temporal and blob dir, as dev.json's env describes, but with the
// production default for webhooks, at debug level. It returns the API's
// URL and a function that reads its output so far.
func startAPIOnly(t *testing.T, s *stack) (string, func() []byte) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "api.log")
	logf, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(s.cmd.Path, "api", "--api-addr", "127.0.0.1:0", "--log-level", "debug")
	for k, v := range s.Env {
		if k != "EXPORTD_WEBHOOK_ALLOW_PRIVATE" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.Env = append(cmd.Env, "PATH="+os.Getenv("PATH"), "HOME="+os.Getenv("HOME"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		_ = logf.Close()
	})
	read := func() []byte { b, _ := os.ReadFile(logPath); return b }
	listening := regexp.MustCompile(`msg="API listening" addr=(\S+)`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		sc := bufio.NewScanner(bytes.NewReader(read()))
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				u := "http://" + m[1]
				require.Eventually(t, func() bool {
					resp, err := http.Get(u + "/healthz")
					if err == nil {
						resp.Body.Close()
					}
					return err == nil && resp.StatusCode == http.StatusOK
				}, 10*time.Second, 50*time.Millisecond)
				return u, read
			}
		}
		select {
		case <-done:
			t.Fatalf("exportd api exited:\n%s", read())
		case <-time.After(50 * time.Millisecond):
		}
		require.True(t, time.Now().Before(deadline), "exportd api not listening within 30s:\n%s", read())
	}
}
