package elasticpath

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestParseFilter(t *testing.T) {
	const us = time.Microsecond
	for _, tc := range []struct {
		name   string
		filter string
		want   Filter
	}{
		{"empty", "", Filter{}},
		{"spaces only", "   ", Filter{}},
		{"documented example window", "gt(created_at,2018-09-01):lt(created_at,2018-10-01)",
			Filter{Start: utc("2018-09-01T00:00:00Z").Add(us), End: utc("2018-10-01T00:00:00Z")}},
		{"half-open window", "ge(created_at,2025-02-01):lt(created_at,2025-03-01)",
			Filter{Start: utc("2025-02-01T00:00:00Z"), End: utc("2025-03-01T00:00:00Z")}},
		{"le includes the instant", "le(created_at,2025-03-01T00:00:00Z)",
			Filter{End: utc("2025-03-01T00:00:00.000001Z")}},
		{"lower bound only", "gt(created_at,2024-01-01)", Filter{Start: utc("2024-01-01T00:00:00.000001Z")}},
		{"eq date is the whole UTC day", "eq(created_at,2024-02-29)",
			Filter{Start: utc("2024-02-29T00:00:00Z"), End: utc("2024-03-01T00:00:00Z")}},
		{"eq instant is that microsecond", "eq(created_at,2024-02-29T10:11:12.000005Z)",
			Filter{Start: utc("2024-02-29T10:11:12.000005Z"), End: utc("2024-02-29T10:11:12.000006Z")}},
		{"unquoted RFC 3339 with colons", "ge(created_at,2024-01-01T10:00:00Z):lt(created_at,2024-01-01T12:30:00+02:00)",
			Filter{Start: utc("2024-01-01T10:00:00Z"), End: utc("2024-01-01T10:30:00Z")}},
		{"quoted operands", `ge(created_at,"2018-04-16T10:11:59.715Z"):lt('created_at','2018-04-17')`,
			Filter{Start: utc("2018-04-16T10:11:59.715Z"), End: utc("2018-04-17T00:00:00Z")}},
		{"milliseconds since 1970", "ge(created_at,640912546584)",
			Filter{Start: time.UnixMilli(640912546584).UTC()}},
		{"sub-microsecond lt rounds up", "lt(created_at,2024-01-01T00:00:00.0000001Z)",
			Filter{End: utc("2024-01-01T00:00:00.000001Z")}},
		{"sub-microsecond gt rounds up", "gt(created_at,2024-01-01T00:00:00.0000001Z)",
			Filter{Start: utc("2024-01-01T00:00:00.000001Z")}},
		{"sub-microsecond ge rounds up", "ge(created_at,2024-01-01T00:00:00.0000001Z)",
			Filter{Start: utc("2024-01-01T00:00:00.000001Z")}},
		{"sub-microsecond le rounds down", "le(created_at,2024-01-01T00:00:00.0000019Z)",
			Filter{End: utc("2024-01-01T00:00:00.000002Z")}},
		{"bounds narrow", "ge(created_at,2024-01-01):ge(created_at,2024-01-05):lt(created_at,2024-03-01):le(created_at,2024-02-01)",
			Filter{Start: utc("2024-01-05T00:00:00Z"), End: utc("2024-02-01T00:00:00.000001Z")}},
		{"eq narrows a range", "ge(created_at,2024-01-01):lt(created_at,2024-12-01):eq(created_at,2024-06-01)",
			Filter{Start: utc("2024-06-01T00:00:00Z"), End: utc("2024-06-02T00:00:00Z")}},
		{"spaces around operands and terms", " ge( created_at , 2024-01-01 ) : lt(created_at, 2024-02-01) ",
			Filter{Start: utc("2024-01-01T00:00:00Z"), End: utc("2024-02-01T00:00:00Z")}},
		{"before 1970 is the epoch", "ge(created_at,1900-01-01):lt(created_at,1970-01-02)",
			Filter{Start: epoch, End: utc("1970-01-02T00:00:00Z")}},
		{"year 1", "gt(created_at,0001-01-01)", Filter{Start: epoch}},
		{"last day", "eq(created_at,9999-12-30)", Filter{Start: utc("9999-12-30T00:00:00Z"), End: utc("9999-12-31T00:00:00Z")}},
		{"URL-encoded", "ge%28created_at%2C2024-01-01%29%3Alt%28created_at%2C2024-02-01%29",
			Filter{Start: utc("2024-01-01T00:00:00Z"), End: utc("2024-02-01T00:00:00Z")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFilter(tc.filter)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			again, err := ParseFilter(got.String())
			require.NoError(t, err, "canonical form %q", got.String())
			require.Equal(t, got, again)
		})
	}
}

func TestParseFilterErrors(t *testing.T) {
	for _, tc := range []struct {
		name, filter, want string
		pos                int // 1-based, 0 when the error is about the filter as a whole
	}{
		{"status is not supported", "gt(created_at,2024-01-01):eq(status,complete)", `filtering on "status" is not supported`, 27},
		{"payment from the documented example", "gt(created_at,2018-09-01):lt(created_at,2018-10-01):eq(payment,refunded)", `filtering on "payment" is not supported`, 53},
		{"in on status", "in(status,complete,paid)", `filtering on "status" is not supported`, 1},
		{"updated_at", "gt(updated_at,2024-01-01)", "updated_at is not supported", 1},
		{"unknown field", "gt(createdAt,2024-01-01)", `unknown field "createdAt"`, 1},
		{"unknown operator", "gte(created_at,2024-01-01)", `unknown operator "gte"`, 1},
		{"like on created_at", "like(created_at,2024*)", `operator "like" is not supported on created_at`, 1},
		{"in on created_at", "in(created_at,2024-01-01,2024-01-02)", `operator "in" is not supported on created_at`, 1},
		{"bad date", "gt(created_at,2024-13-01)", `"2024-13-01" is not a date`, 1},
		{"words for a date", "gt(created_at,yesterday)", `"yesterday" is not a date`, 1},
		{"empty value", "gt(created_at,)", `"" is not a date`, 1},
		{"too many values", "gt(created_at,2024-01-01,2024-02-01)", "gt takes a field and 1 value(s), got 2", 37},
		{"no value", "gt(created_at)", "gt takes a field and 1 value(s), got 0", 15},
		{"missing paren", "gt(created_at,2024-01-01", "missing ')'", 25},
		{"missing open paren", "gt created_at", "expected '(' after gt", 3},
		{"missing colon", "gt(created_at,2024-01-01)lt(created_at,2024-02-01)", "expected ':' between terms", 26},
		{"trailing colon", "gt(created_at,2024-01-01):", "expected an operator such as gt or eq at the end", 27},
		{"comma separator", "gt(created_at,2024-01-01),lt(created_at,2024-02-01)", "expected ':' between terms", 26},
		{"unterminated quote", `gt(created_at,"2024-01-01)`, "unterminated quoted value", 27},
		{"junk after quote", `gt(created_at,"2024-01-01"x)`, "after a quoted value", 27},
		{"no field", "gt(,2024-01-01)", "needs a field name first", 16},
		{"inverted window", "ge(created_at,2024-02-01):lt(created_at,2024-01-01)", "select no time at all", 27},
		{"equal bounds", "ge(created_at,2024-02-01):lt(created_at,2024-02-01)", "select no time at all", 27},
		{"sub-microsecond instant", "eq(created_at,2024-02-01T00:00:00.0000001Z)", "select no time at all", 1},
		{"upper bound before 1970", "lt(created_at,1969-12-31)", "ends before 1970", 1},
		{"upper bound at the zero time", "lt(created_at,0001-01-01T00:00:00Z)", "ends before 1970", 1},
		{"past 9999", "eq(created_at,9999-12-31)", "past the year 9999", 1},
		{"past 9999 by a microsecond", "gt(created_at,9999-12-31T23:59:59.999999Z)", "past the year 9999", 1},
		{"year 10000 in ms", "gt(created_at,999999999999999)", "outside the years", 1},
		{"eleven terms", strings.Repeat("ge(created_at,2024-01-01):", 10) + "lt(created_at,2024-02-01)", "at most 10 terms", 261},
		{"too long", "eq(created_at,'" + strings.Repeat("x", 9000) + "')", "longer than 8192 bytes", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFilter(tc.filter)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			var fe *FilterError
			require.True(t, errors.As(err, &fe))
			require.Equal(t, tc.pos, fe.Offset+1, "position in %q", tc.filter)
		})
	}
}

func TestFilterWindow(t *testing.T) {
	now := utc("2025-06-15T12:00:00.1234567Z")
	start, end, err := Filter{}.Window(now)
	require.NoError(t, err)
	require.Equal(t, epoch, start)
	require.Equal(t, utc("2025-06-15T12:00:00.123457Z"), end, "now rounded up to the source's precision")

	start, end, err = Filter{Start: utc("2025-02-01T00:00:00Z")}.Window(now)
	require.NoError(t, err)
	require.Equal(t, utc("2025-02-01T00:00:00Z"), start)
	require.Equal(t, utc("2025-06-15T12:00:00.123457Z"), end)

	start, end, err = Filter{End: utc("2025-03-01T00:00:00Z")}.Window(now)
	require.NoError(t, err)
	require.Equal(t, epoch, start)
	require.Equal(t, utc("2025-03-01T00:00:00Z"), end)

	_, _, err = Filter{Start: utc("2030-01-01T00:00:00Z")}.Window(now)
	require.ErrorContains(t, err, "is in the future")
	_, _, err = Filter{End: utc("1969-12-31T00:00:00Z")}.Window(now)
	require.ErrorContains(t, err, "select no time at all")
}

// FuzzParseFilter checks that no input panics, that every refusal is a
// FilterError, and that every accepted filter reads back from its
// canonical form and yields a valid, microsecond-aligned window.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		"", "gt(created_at,2024-01-01):lt(created_at,2024-02-01)",
		"eq(created_at,2024-02-29)", "ge(created_at,640912546584)", `ge(created_at,"2018-04-16T10:11:59.715Z")`,
		"in(status,complete,paid)", "like(email,*@example.com)",
	} {
		f.Add(s)
	}
	now := utc("2025-06-15T12:00:00.1234567Z")
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := ParseFilter(s)
		if err != nil {
			var fe *FilterError
			require.True(t, errors.As(err, &fe), "%T: %v", err, err)
			require.NotEmpty(t, fe.Reason)
			require.LessOrEqual(t, fe.Offset, len(s))
			return
		}
		again, err := ParseFilter(flt.String())
		require.NoError(t, err, "canonical form %q of %q", flt.String(), s)
		require.Equal(t, flt, again)
		if !flt.Start.IsZero() && !flt.End.IsZero() {
			require.True(t, flt.Start.Before(flt.End), "%q: [%s, %s)", s, flt.Start, flt.End)
		}
		start, end, err := flt.Window(now)
		if err != nil {
			require.True(t, flt.Start.IsZero() || flt.End.IsZero(), "explicit bounds were checked by ParseFilter")
			return
		}
		require.True(t, start.Before(end))
		require.Equal(t, time.UTC, start.Location())
		require.Equal(t, time.UTC, end.Location())
		require.Equal(t, start, start.Truncate(precision))
		require.Equal(t, end, end.Truncate(precision))
	})
}
