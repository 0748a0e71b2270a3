package doshii

import (
	"net/url"

	"github.com/exportd/exportd"
)

// Status is Doshii's status document of a data request: the body of
// GET /partner/v3/data/{dataSet}/{requestId} and of the webhook. Times are
// unix seconds, as Doshii documents them.
type Status struct {
	RequestID        string `json:"requestId"`
	RequestCreatedAt int64  `json:"requestCreatedAt"`
	// Status is pending, processing, complete, failed or aborted.
	Status string `json:"status"`
	// RequestCompletedAt, Files and Tally are set once complete.
	RequestCompletedAt *int64 `json:"requestCompletedAt,omitempty"`
	Files              []File `json:"files,omitzero"`
	Tally              *Tally `json:"tally,omitempty"`
	// Error says why a failed request failed; Doshii documents no field
	// for it, and clients that do not know it ignore it.
	Error *ErrorBody `json:"error,omitempty"`
}

// File is one data file of a complete request.
type File struct {
	// URI is an absolute URL that needs the same authentication as the
	// API; a relative one would resolve differently in every client.
	URI string `json:"uri"`
	// Size is in kilobytes of the compressed file, rounded up so that no
	// file reads as empty.
	Size int64 `json:"size"`
	// Expires is when the file is deleted, in unix seconds.
	Expires int64 `json:"expires"`
}

// Tally is Doshii's summary of the extracted data.
type Tally struct {
	Locations    int   `json:"locations"`
	Orders       int64 `json:"orders"`
	Transactions int64 `json:"transactions"`
	Amount       int64 `json:"amount"` // cents, net of refunds
}

// StatusOf maps an export phase onto Doshii's request statuses. An
// expired request stays complete: it did complete, and its files are
// gone, which the empty file list and a 410 on download say.
func StatusOf(p exportd.Phase) string {
	switch p {
	case exportd.PhaseExporting:
		return "processing"
	case exportd.PhaseReady, exportd.PhaseExpired:
		return "complete"
	case exportd.PhaseFailed:
		return "failed"
	case exportd.PhaseCanceled:
		return "aborted"
	}
	return "pending"
}

// StatusDocument renders an export as Doshii's status document, for the
// status route and for the webhook delivery, which POSTs exactly this.
// m is the export's manifest, needed once the export is READY to list
// its files; baseURL is the externally visible URL of the API, without
// the /partner/v3 path.
func StatusDocument(st exportd.State, m *exportd.Manifest, baseURL string) Status {
	s := Status{RequestID: st.Spec.ExportID, RequestCreatedAt: st.CreatedAt.Unix(), Status: StatusOf(st.Phase)}
	switch s.Status {
	case "complete":
		if st.CompletedAt != nil {
			at := st.CompletedAt.Unix()
			s.RequestCompletedAt = &at
		}
		s.Files = []File{}
		var tally exportd.Tally
		if st.Tally != nil {
			tally = *st.Tally
		}
		if m != nil && st.Phase == exportd.PhaseReady {
			tally = m.Tally
			var expires int64
			if st.AvailableUntil != nil {
				expires = st.AvailableUntil.Unix()
			}
			for _, f := range m.Files {
				if f.Format == exportd.DoshiiJSON {
					s.Files = append(s.Files, File{URI: FileURI(baseURL, st.Spec.ExportID, f.Name), Size: (f.Bytes + 1023) / 1024, Expires: expires})
				}
			}
		}
		s.Tally = &Tally{Locations: tally.Locations, Orders: tally.Orders, Transactions: tally.Transactions, Amount: tally.Amount}
	case "failed":
		if st.Error != nil {
			s.Error = &ErrorBody{Message: st.Error.Message, ErrorCode: st.Error.Code}
		}
	}
	return s
}

// FileURI is the download URL of a file of a request.
func FileURI(baseURL, requestID, name string) string {
	return baseURL + BasePath + "/data/" + string(exportd.Orders) + "/" + url.PathEscape(requestID) + "/files/" + url.PathEscape(name)
}
