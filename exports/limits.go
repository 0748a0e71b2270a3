package exports

import (
	"fmt"
	"time"
)

// LimitError refuses a new export because too many are queued; the client
// should retry after RetryAfter. Natively it is a 429, in the Clover
// dialect a 503.
type LimitError struct {
	Reason     string
	RetryAfter time.Duration
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s; retry after %s", e.Reason, e.RetryAfter)
}

// ServiceHoursError refuses a new export outside the configured service
// hours (weekday windows in UTC); Hours describes them for the client.
type ServiceHoursError struct {
	Hours      string
	RetryAfter time.Duration
}

func (e *ServiceHoursError) Error() string {
	return "exports are accepted only during service hours: " + e.Hours
}
