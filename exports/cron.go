package exports

import (
	"fmt"
	"strconv"
	"strings"
)

// cronFields are the five fields of a standard cron expression, with
// their ranges and the names each takes.
var cronFields = []struct {
	name     string
	min, max int
	names    []string // names[i] stands for min+i
}{
	{"minute", 0, 59, nil},
	{"hour", 0, 23, nil},
	{"day of month", 1, 31, nil},
	{"month", 1, 12, []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	// 7 is Sunday too, as in most crons and Temporal's.
	{"day of week", 0, 7, []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

// checkCron accepts a standard five-field cron expression (minute, hour,
// day of month, month, day of week; each a list of *, values, ranges and
// steps, months and weekdays also by name), in UTC. Temporal would take
// more (seconds, years, @every, time zones); a schedule takes the common
// form only, so that what it accepts means the same everywhere.
func checkCron(expr string) error {
	fields := strings.Fields(expr)
	if len(fields) != len(cronFields) {
		return fmt.Errorf("must have 5 fields (minute hour day-of-month month day-of-week), like \"0 * * * *\"; it has %d", len(fields))
	}
	for i, f := range fields {
		spec := cronFields[i]
		for item := range strings.SplitSeq(f, ",") {
			if err := checkCronItem(item, spec.min, spec.max, spec.names); err != nil {
				return fmt.Errorf("%s field %q: %w", spec.name, f, err)
			}
		}
	}
	return nil
}

func checkCronItem(item string, lo, hi int, names []string) error {
	rng, step, hasStep := strings.Cut(item, "/")
	if hasStep {
		n, err := strconv.Atoi(step)
		if err != nil || n < 1 || n > hi-lo+1 {
			return fmt.Errorf("step %q must be a number from 1 to %d", step, hi-lo+1)
		}
	}
	if rng == "*" {
		return nil
	}
	from, to, isRange := strings.Cut(rng, "-")
	a, err := cronValue(from, lo, hi, names)
	if err != nil {
		return err
	}
	if !isRange {
		return nil
	}
	b, err := cronValue(to, lo, hi, names)
	if err != nil {
		return err
	}
	if b < a {
		return fmt.Errorf("range %q ends before it starts", rng)
	}
	return nil
}

func cronValue(s string, lo, hi int, names []string) (int, error) {
	for i, n := range names {
		if strings.EqualFold(s, n) {
			return lo + i, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi || strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("%q is not a value from %d to %d", s, lo, hi)
	}
	return v, nil
}
