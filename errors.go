package exportd

import (
	"errors"
	"fmt"
	"time"
)

// Error is a failure classified where it arose: a code the APIs map to
// their statuses, a message the user can act on, and whether retrying can
// help. Wrap the cause so logs keep it; the message never carries it.
type Error struct {
	// Code is one of the Code* constants.
	Code string
	// Message names what failed in the user's terms: the table, column
	// and row key of unreadable data, the file that could not be stored.
	Message string
	// Field names the request field an invalid_request is about; "" when
	// the request as a whole is wrong.
	Field string
	// RetryAfter is how long a refused client should wait before asking
	// again (over_limit, outside_service_hours, unavailable); zero when
	// waiting will not help.
	RetryAfter time.Duration
	// Permanent is set when retrying cannot succeed (a schema change,
	// a value out of range); the export then ends at once.
	Permanent bool
	// Err is the underlying cause, for logs and errors.Is.
	Err error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Message
	}
	return e.Message + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns a transient Error with code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// SourceError classifies err as a failure to read the source. Permanent
// marks data or schema that cannot be read however often it is tried.
func SourceError(err error, permanent bool, format string, args ...any) *Error {
	return &Error{Code: CodeSourceError, Message: fmt.Sprintf(format, args...), Permanent: permanent, Err: err}
}

// StorageError classifies err as a transient failure of the blob store.
func StorageError(err error, format string, args ...any) *Error {
	return &Error{Code: CodeStorageError, Message: fmt.Sprintf(format, args...), Err: err}
}

// ErrorCode returns the code of the first Error in err's chain,
// CodeInvalidRequest for a *ValidationError, or "" when err is
// unclassified. Callers branch on the code, never on error text.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		return CodeInvalidRequest
	}
	return ""
}

// AsError returns the first Error in err's chain, or nil.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}
