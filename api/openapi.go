package api

import (
	_ "embed"
	"net/http"
)

// OpenAPI is the OpenAPI 3.1 document of the native API. Tests validate
// real responses against it, so it cannot drift from the code unnoticed.
//
//go:embed openapi.json
var OpenAPI []byte

func (h *handlers) openapi(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, err := w.Write(OpenAPI)
	return err
}
