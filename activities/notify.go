package activities

import (
	"context"
	"fmt"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/webhook"
)

// Renderer builds the body of an export's webhook in the dialect the
// export asked for; the API package provides it at wiring time.
type Renderer interface {
	Render(ctx context.Context, st exportd.State) ([]byte, error)
}

// Secrets finds the key webhooks of an app are signed with.
type Secrets interface {
	WebhookSecret(ctx context.Context, appID string) ([]byte, error)
}

// NotifyInput is the state an export's webhook announces.
type NotifyInput struct {
	State exportd.State `json:"state"`
}

// NotifyResult records the receiver's answer.
type NotifyResult struct {
	Status int `json:"status"`
}

// Notify POSTs the export's status document to its webhook, signed as
// Standard Webhooks prescribe. The message id is stable across retries so
// receivers can drop duplicates. Failures the receiver will never accept
// (a 4xx, a forbidden address) are not retried.
func (a *Activities) Notify(ctx context.Context, in NotifyInput) (NotifyResult, error) {
	st := in.State
	if st.Spec.Webhook == nil {
		return NotifyResult{}, nil
	}
	if a.Webhooks == nil || a.Renderer == nil {
		return NotifyResult{}, temporal.NewNonRetryableApplicationError("webhooks are not configured on this worker", "webhook_unconfigured", nil)
	}
	body, err := a.Renderer.Render(ctx, st)
	if err != nil {
		return NotifyResult{}, fmt.Errorf("error rendering webhook: %w", err)
	}
	var secret []byte
	if st.Spec.AppID != "" && a.Secrets != nil {
		if secret, err = a.Secrets.WebhookSecret(ctx, st.Spec.AppID); err != nil {
			return NotifyResult{}, fmt.Errorf("error reading webhook secret: %w", err)
		}
	}
	res, err := a.Webhooks.Send(ctx, webhook.Message{
		URL:     st.Spec.Webhook.URL,
		ID:      "msg_" + st.Spec.ExportID + "_" + strings.ToLower(string(st.Phase)),
		Body:    body,
		Secret:  secret,
		Headers: st.Spec.Webhook.Headers,
	})
	if err != nil && !webhook.Retryable(err) {
		return NotifyResult{Status: res.Status}, temporal.NewNonRetryableApplicationError(err.Error(), "webhook_refused", err)
	}
	if err != nil {
		return NotifyResult{Status: res.Status}, fmt.Errorf("error delivering webhook: %w", err)
	}
	return NotifyResult{Status: res.Status}, nil
}
