package postgres

import "context"

// WebhookSecret returns the key an app's webhooks are signed with: its
// client secret, which the app already holds, so receivers can verify
// signatures without another secret to distribute.
func (a *Access) WebhookSecret(ctx context.Context, appID string) ([]byte, error) {
	creds, err := a.AppByID(ctx, appID)
	if err != nil {
		return nil, err
	}
	return []byte(creds.ClientSecret), nil
}
