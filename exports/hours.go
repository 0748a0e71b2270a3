package exports

import (
	"fmt"
	"strings"
	"time"
)

// Hours are the service hours: weekday windows in UTC during which new
// exports are accepted. The zero value is always open.
type Hours struct {
	spec    string
	windows []window // per weekday, minutes since midnight, [from, to)
}

type window struct {
	day      time.Weekday
	from, to int
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// ParseHours reads service hours like "Mon-Fri 08:00-18:00; Sat 10:00-14:00"
// (UTC; days as three-letter English names, a range or a single day; times
// HH:MM, 24:00 allowed as an end). The empty string is always open.
func ParseHours(s string) (Hours, error) {
	h := Hours{spec: strings.TrimSpace(s)}
	if h.spec == "" {
		return h, nil
	}
	for _, part := range strings.Split(h.spec, ";") {
		fields := strings.Fields(part)
		if len(fields) != 2 {
			return Hours{}, fmt.Errorf("service hours %q: want \"Mon-Fri 08:00-18:00\"", part)
		}
		days, err := parseDays(fields[0])
		if err != nil {
			return Hours{}, err
		}
		from, to, err := parseSpan(fields[1])
		if err != nil {
			return Hours{}, err
		}
		for _, d := range days {
			h.windows = append(h.windows, window{day: d, from: from, to: to})
		}
	}
	return h, nil
}

func parseDays(s string) ([]time.Weekday, error) {
	a, b, isRange := strings.Cut(strings.ToLower(s), "-")
	first, ok1 := weekdays[a]
	last, ok2 := weekdays[b]
	if !isRange {
		last, ok2 = first, ok1
	}
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("service hours: unknown day in %q (use Mon, Tue, ... Sun)", s)
	}
	var out []time.Weekday
	for d := first; ; d = (d + 1) % 7 {
		out = append(out, d)
		if d == last {
			return out, nil
		}
	}
}

func parseSpan(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "-")
	from, err1 := parseClock(a)
	to, err2 := parseClock(b)
	if !ok || err1 != nil || err2 != nil || from >= to {
		return 0, 0, fmt.Errorf("service hours: bad time span %q (want HH:MM-HH:MM, start before end)", s)
	}
	return from, to, nil
}

func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err == nil {
		return t.Hour()*60 + t.Minute(), nil
	}
	if s == "24:00" {
		return 24 * 60, nil
	}
	return 0, err
}

// Open reports whether t falls within the service hours.
func (h Hours) Open(t time.Time) bool {
	if len(h.windows) == 0 {
		return true
	}
	t = t.UTC()
	m := t.Hour()*60 + t.Minute()
	for _, w := range h.windows {
		if w.day == t.Weekday() && m >= w.from && m < w.to {
			return true
		}
	}
	return false
}

// Until returns how long from t until the service hours next open (zero
// when open now), scanning at minute granularity over a week.
func (h Hours) Until(t time.Time) time.Duration {
	t = t.UTC().Truncate(time.Minute)
	for i := 0; i <= 7*24*60; i++ {
		if h.Open(t.Add(time.Duration(i) * time.Minute)) {
			return time.Duration(i) * time.Minute
		}
	}
	return 0
}

// String returns the hours as configured, with the time zone named.
func (h Hours) String() string {
	if h.spec == "" {
		return "always"
	}
	return h.spec + " UTC"
}
