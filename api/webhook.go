package api

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/api/doshii"
	"github.com/exportd/exportd/exports"
)

// WebhookRenderer writes the body of an export's webhook: the status
// document of the dialect the export was requested in, exactly as a GET
// would return it. Workers use it through activities.Renderer.
type WebhookRenderer struct {
	Service *exports.Service
	// PublicURL is the API's externally visible base URL, for the links
	// in the document.
	PublicURL string
}

// Render returns the JSON body announcing st.
func (w WebhookRenderer) Render(ctx context.Context, st exportd.State) ([]byte, error) {
	base := strings.TrimRight(w.PublicURL, "/")
	if st.Spec.Webhook != nil && st.Spec.Webhook.Dialect == "doshii" {
		// Doshii's status document lists every file, as the vendor's does.
		var m *exportd.Manifest
		if st.Phase == exportd.PhaseReady {
			man, err := w.Service.Manifest(ctx, st.Spec.ExportID)
			if err != nil {
				return nil, err
			}
			m = &man
		}
		return json.Marshal(doshii.StatusDocument(st, m, base))
	}
	var page *filePage
	if st.Phase == exportd.PhaseReady {
		files, next, err := w.Service.Files(ctx, st, "", exports.InlineFiles)
		if err != nil {
			return nil, err
		}
		page = &filePage{files: files, next: next}
	}
	return json.Marshal(documentOf(base, w.Service.Signer, st, page))
}
