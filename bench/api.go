package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/exportd/exportd"
)

// StatusDoc is the part of the native status document the bench and
// `exportd dev --demo` read.
type StatusDoc struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Progress struct {
		Percent float64 `json:"percent"`
		Rows    int64   `json:"rows"`
		Total   int64   `json:"total"`
	} `json:"progress"`
	AvailableUntil *time.Time `json:"availableUntil"`
	Files          []struct {
		Name   string `json:"name"`
		Format string `json:"format"`
		Rows   int64  `json:"rows"`
		Bytes  int64  `json:"bytes"`
		SHA256 string `json:"sha256"`
		URL    string `json:"url"`
	} `json:"files"`
	Tally *exportd.Tally   `json:"tally"`
	Error *exportd.Failure `json:"error"`
	// NextCursor is a succeeded change export's.
	NextCursor string `json:"nextCursor"`
}

// Call sends an API request with key as its bearer token and decodes a
// 2xx JSON answer into v; any other status is an error, with its status.
func Call(ctx context.Context, method, url, key, body string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewBufferString(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, b)
	}
	return resp.StatusCode, json.Unmarshal(b, v)
}
