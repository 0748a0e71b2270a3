package elasticpath

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"

	"github.com/exportd/exportd/postgres"
)

// Token is the body of a successful POST /oauth/access_token.
type Token struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Expires     int64  `json:"expires"` // unix seconds
	Identifier  string `json:"identifier"`
}

// TokenResponse is Token at the top level, as the Elastic Path guide and
// JavaScript SDK read it, and again under data, as the Authentication
// API's OpenAPI document shows it; a client written from either works.
type TokenResponse struct {
	Token
	Data Token `json:"data"`
}

// grantClientCredentials is the only grant: an implicit token is for
// storefront reads, and exports are not one.
const grantClientCredentials = "client_credentials"

// accessToken is POST /oauth/access_token: the client-credentials grant.
func (h *handlers) accessToken(w http.ResponseWriter, r *http.Request) error {
	form, err := readForm(r)
	if err != nil {
		return err
	}
	switch gt := form.Get("grant_type"); gt {
	case grantClientCredentials:
	case "":
		return errorf(http.StatusBadRequest, "grant_type is required; use client_credentials")
	default:
		return errorf(http.StatusBadRequest, "grant_type %q is not supported; use client_credentials", gt)
	}
	clientID, secret := form.Get("client_id"), form.Get("client_secret")
	if clientID == "" && secret == "" {
		// OAuth 2.0 clients may send the credentials as HTTP Basic instead.
		clientID, secret, _ = r.BasicAuth()
	}
	if clientID == "" {
		return errorf(http.StatusBadRequest, "client_id is required")
	}
	if secret == "" {
		return errorf(http.StatusBadRequest, "client_secret is required for the client_credentials grant")
	}
	app, err := h.Apps.VerifyClientSecret(r.Context(), clientID, secret)
	if errors.Is(err, postgres.ErrNotFound) {
		return errorf(http.StatusUnauthorized, "the client_id and client_secret do not match any application key")
	}
	if err != nil {
		return fmt.Errorf("error verifying client credentials: %w", err)
	}
	merchant, err := h.store(r, app, form.Get("store_id"))
	if err != nil {
		return err
	}
	now := h.Now()
	t := Token{
		AccessToken: issueToken(h.TokenKey, claims{App: app.ID, Merchant: merchant, Expires: now.Add(tokenTTL).Unix()}),
		TokenType:   "Bearer",
		ExpiresIn:   int64(tokenTTL.Seconds()),
		Expires:     now.Add(tokenTTL).Unix(),
		Identifier:  grantClientCredentials,
	}
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, TokenResponse{Token: t, Data: t})
	return nil
}

// store picks the merchant a token acts for. An Elastic Path store is one
// merchant and its keys never name it, so by default it is the app's
// first install by merchant id, a choice that does not change while the
// installs do not; store_id, an exportd extension, picks another.
func (h *handlers) store(r *http.Request, app postgres.App, want string) (string, error) {
	ids, err := h.Apps.InstalledMerchants(r.Context(), app.ID)
	if err != nil {
		return "", fmt.Errorf("error listing installs: %w", err)
	}
	switch {
	case len(ids) == 0:
		return "", errorf(http.StatusForbidden, "no merchant has installed this application, so it has no store to export")
	case want == "":
		return slices.Min(ids), nil
	case slices.Contains(ids, want):
		return want, nil
	}
	return "", errorf(http.StatusBadRequest, "store_id %q is not a store this application is installed in", want)
}

// readForm reads the token request's fields from a form-encoded body
// whatever the Content-Type says: Elastic Path's own curl example sends
// form data labelled application/json. A JSON object body works too.
func readForm(r *http.Request) (url.Values, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, fmt.Errorf("error reading the request body: %w", err)
	}
	if b = bytes.TrimSpace(b); len(b) > 0 && b[0] == '{' {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, errorf(http.StatusBadRequest, "the body looks like JSON but is not valid: %v", err)
		}
		form := url.Values{}
		for k, v := range m {
			if s, ok := v.(string); ok {
				form.Set(k, s)
			}
		}
		return form, nil
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "the body is not form-encoded (grant_type=client_credentials&client_id=...&client_secret=...): %v", err)
	}
	return form, nil
}
