package elasticpath

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Limits Elastic Path documents for a filter: at most 10 terms, at most
// 8 KB in all.
const (
	maxFilterTerms = 10
	maxFilterBytes = 8 << 10
)

// precision is the resolution of created_at in the source (timestamptz),
// so strict bounds move by one microsecond.
const precision = time.Microsecond

// Filter is an Elastic Path order filter reduced to what an export can
// honour: a half-open created_at window [Start, End). A zero bound was not
// given; Window fills it.
type Filter struct {
	Start time.Time // inclusive lower bound of created_at, UTC; zero when open
	End   time.Time // exclusive upper bound of created_at, UTC; zero when open
}

// FilterError says what is wrong with a filter and where, so the client
// can fix it; it is a 400.
type FilterError struct {
	Offset int // byte offset of the offending term or character; -1 for the filter as a whole
	Reason string
}

func (e *FilterError) Error() string {
	if e.Offset < 0 {
		return e.Reason
	}
	return fmt.Sprintf("%s (at character %d of the filter)", e.Reason, e.Offset+1)
}

// epoch is the default lower bound: Elastic Path dates are milliseconds
// since 1970, so nothing a client can name lies before it, and no order
// in the source does either.
var epoch = time.Unix(0, 0).UTC()

// Window returns the export window of the filter: a missing lower bound is
// the Unix epoch and a missing upper bound is now, so a filter without
// created_at bounds exports every order up to the request, as Elastic Path
// does. A window that ends up empty is an error the client can act on.
func (f Filter) Window(now time.Time) (start, end time.Time, err error) {
	start, end = f.Start, f.End
	if start.IsZero() {
		start = epoch
	}
	if end.IsZero() {
		end = ceil(now.UTC())
		if !start.Before(end) {
			return time.Time{}, time.Time{}, &FilterError{Offset: -1, Reason: fmt.Sprintf(
				"the created_at lower bound %s is in the future, so no order can match; give an upper bound too", start.Format(time.RFC3339Nano))}
		}
	}
	if !start.Before(end) {
		return time.Time{}, time.Time{}, &FilterError{Offset: -1, Reason: fmt.Sprintf(
			"the created_at bounds select no time at all: [%s, %s)", start.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano))}
	}
	return start, end, nil
}

// String returns the canonical filter for f: ge and lt over RFC 3339
// times, which ParseFilter reads back to f.
func (f Filter) String() string {
	var terms []string
	if !f.Start.IsZero() {
		terms = append(terms, "ge(created_at,"+f.Start.UTC().Format(time.RFC3339Nano)+")")
	}
	if !f.End.IsZero() {
		terms = append(terms, "lt(created_at,"+f.End.UTC().Format(time.RFC3339Nano)+")")
	}
	return strings.Join(terms, ":")
}

// ParseFilter reads an Elastic Path filter such as
// "ge(created_at,2024-01-01):lt(created_at,2024-02-01)" into a created_at
// window. Terms are ANDed, so several bounds narrow the window. Any other
// field is refused rather than ignored: exporting orders the client meant
// to leave out would be worse than an error.
func ParseFilter(s string) (Filter, error) {
	if len(s) > maxFilterBytes {
		return Filter{}, &FilterError{Offset: -1, Reason: fmt.Sprintf("the filter is longer than %d bytes", maxFilterBytes)}
	}
	// Elastic Path recommends URL-encoding filters in query strings; a
	// client that does the same inside the JSON body still means the
	// decoded filter.
	if !strings.Contains(s, "(") && strings.Contains(strings.ToLower(s), "%28") {
		if dec, err := url.QueryUnescape(s); err == nil {
			s = dec
		}
	}
	p := parser{s: s}
	terms, err := p.terms()
	if err != nil {
		return Filter{}, err
	}
	if len(terms) > maxFilterTerms {
		return Filter{}, &FilterError{Offset: terms[maxFilterTerms].offset, Reason: fmt.Sprintf("a filter has at most %d terms", maxFilterTerms)}
	}
	var f Filter
	for _, t := range terms {
		if err := f.apply(t); err != nil {
			return Filter{}, err
		}
	}
	if !f.Start.IsZero() && !f.End.IsZero() && !f.Start.Before(f.End) {
		last := terms[len(terms)-1]
		return Filter{}, &FilterError{Offset: last.offset, Reason: fmt.Sprintf(
			"the created_at bounds select no time at all: [%s, %s)", f.Start.Format(time.RFC3339Nano), f.End.Format(time.RFC3339Nano))}
	}
	return f, nil
}

// term is one operator applied to a field and its values.
type term struct {
	op     string
	field  string
	values []string
	offset int // of the operator
}

// operators maps each Elastic Path operator to the number of operands it
// takes after the field; -1 is one or more.
var operators = map[string]int{
	"eq": 1, "like": 1, "gt": 1, "ge": 1, "lt": 1, "le": 1, "in": -1, "is_null": 0,
}

// orderFields are the order attributes Elastic Path filters on that an
// export cannot select by; naming one is "not supported", not "unknown".
var orderFields = map[string]bool{
	"status": true, "payment": true, "shipping": true, "name": true, "email": true,
	"customer.name": true, "customer.email": true, "customer_id": true, "account_id": true,
	"account_member_id": true, "contact.name": true, "contact.email": true,
	"shipping_name": true, "shipping_postcode": true, "billing_name": true, "billing_postcode": true,
	"with_tax": true, "without_tax": true, "currency": true, "product_id": true, "product_sku": true,
	"external_ref": true, "order_number": true,
}

// apply narrows f by one term.
func (f *Filter) apply(t term) error {
	switch {
	case t.field == "created_at":
	case t.field == "updated_at":
		return &FilterError{Offset: t.offset, Reason: "filtering on updated_at is not supported: an order export selects orders by created_at; use created_at instead"}
	case orderFields[t.field]:
		return &FilterError{Offset: t.offset, Reason: fmt.Sprintf("filtering on %q is not supported: an order export selects orders by created_at only", t.field)}
	default:
		return &FilterError{Offset: t.offset, Reason: fmt.Sprintf("unknown field %q: an order export can be filtered on created_at", t.field)}
	}
	switch t.op {
	case "gt", "ge", "lt", "le", "eq":
	default:
		return &FilterError{Offset: t.offset, Reason: fmt.Sprintf("operator %q is not supported on created_at; use eq, gt, ge, lt or le", t.op)}
	}
	v, date, err := parseTime(t.values[0])
	if err != nil {
		return &FilterError{Offset: t.offset, Reason: err.Error()}
	}
	var lo, hi time.Time // the bounds this term sets, if hasLo, hasHi
	var hasLo, hasHi bool
	switch t.op {
	case "ge":
		lo, hasLo = ceil(v), true
	case "gt":
		lo, hasLo = v.Truncate(precision).Add(precision), true
	case "lt":
		hi, hasHi = ceil(v), true
	case "le":
		hi, hasHi = v.Truncate(precision).Add(precision), true
	case "eq":
		// A date names a whole UTC day; an instant only itself.
		hasLo, hasHi = true, true
		if date {
			lo, hi = v, v.AddDate(0, 0, 1)
		} else {
			lo, hi = ceil(v), v.Truncate(precision).Add(precision)
		}
	}
	// No order precedes 1970 (Elastic Path counts time from it), so an
	// earlier lower bound is the epoch, and an upper bound at or before it
	// selects nothing. This also keeps every bound off the zero time,
	// which means "none".
	if hasLo && lo.Before(epoch) {
		lo = epoch
	}
	if hasHi && !hi.After(epoch) {
		return &FilterError{Offset: t.offset, Reason: fmt.Sprintf("%s(created_at,%s) ends before 1970, so no order can match", t.op, t.values[0])}
	}
	if lo.Year() > 9999 || hi.Year() > 9999 {
		return &FilterError{Offset: t.offset, Reason: fmt.Sprintf("%s(created_at,%s) reaches past the year 9999", t.op, t.values[0])}
	}
	if hasLo && (f.Start.IsZero() || lo.After(f.Start)) {
		f.Start = lo
	}
	if hasHi && (f.End.IsZero() || hi.Before(f.End)) {
		f.End = hi
	}
	return nil
}

// ceil rounds t up to the source's precision.
func ceil(t time.Time) time.Time {
	if d := t.Truncate(precision); !d.Equal(t) {
		return d.Add(precision)
	}
	return t
}

// parseTime reads the date formats Elastic Path documents: YYYY-MM-DD
// (midnight UTC; date is true), milliseconds since 1970, and RFC 3339
// timestamps.
func parseTime(s string) (t time.Time, date bool, err error) {
	switch {
	case len(s) == len("2006-01-02") && strings.Count(s, "-") == 2:
		t, err = time.Parse(time.DateOnly, s)
		date = true
	case s != "" && len(s) <= 15 && strings.Trim(s, "0123456789") == "":
		ms, perr := strconv.ParseInt(s, 10, 64)
		t, err = time.UnixMilli(ms).UTC(), perr
	default:
		t, err = time.Parse(time.RFC3339Nano, s)
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("created_at value %q is not a date (2024-01-31), an RFC 3339 time (2024-01-31T12:00:00Z) or milliseconds since 1970", s)
	}
	if t.Year() < 1 || t.Year() > 9999 {
		return time.Time{}, false, fmt.Errorf("created_at value %q is outside the years 1 to 9999", s)
	}
	return t.UTC(), date, nil
}

// parser scans the filter grammar:
//
//	filter  = [ term *( ":" term ) ]
//	term    = op "(" operand *( "," operand ) ")"
//	operand = quoted / unquoted
//
// Colons separate terms only between them: inside the parentheses they are
// part of an operand, as in an RFC 3339 time.
type parser struct {
	s   string
	pos int
}

func (p *parser) errorf(format string, args ...any) error {
	return &FilterError{Offset: p.pos, Reason: "could not parse the supplied filter: " + fmt.Sprintf(format, args...)}
}

func (p *parser) skipSpaces() {
	for p.pos < len(p.s) && p.s[p.pos] == ' ' {
		p.pos++
	}
}

func (p *parser) terms() ([]term, error) {
	var terms []term
	p.skipSpaces()
	if p.pos == len(p.s) {
		return nil, nil
	}
	for {
		t, err := p.term()
		if err != nil {
			return nil, err
		}
		terms = append(terms, t)
		if len(terms) > maxFilterTerms {
			return terms, nil
		}
		p.skipSpaces()
		if p.pos == len(p.s) {
			return terms, nil
		}
		if p.s[p.pos] != ':' {
			return nil, p.errorf("expected ':' between terms, found %q", p.s[p.pos])
		}
		p.pos++
		p.skipSpaces()
	}
}

func (p *parser) term() (term, error) {
	t := term{offset: p.pos}
	start := p.pos
	for p.pos < len(p.s) && (p.s[p.pos] >= 'a' && p.s[p.pos] <= 'z' || p.s[p.pos] == '_') {
		p.pos++
	}
	t.op = p.s[start:p.pos]
	if t.op == "" {
		if p.pos == len(p.s) {
			return t, p.errorf("expected an operator such as gt or eq at the end")
		}
		return t, p.errorf("expected an operator such as gt or eq, found %q", p.s[p.pos])
	}
	arity, ok := operators[t.op]
	if !ok {
		p.pos = start
		return t, p.errorf("unknown operator %q (known: eq, like, in, gt, ge, lt, le)", t.op)
	}
	if p.pos == len(p.s) || p.s[p.pos] != '(' {
		return t, p.errorf("expected '(' after %s", t.op)
	}
	p.pos++
	var operands []string
	for {
		v, err := p.operand()
		if err != nil {
			return t, err
		}
		operands = append(operands, v)
		if p.pos == len(p.s) {
			return t, p.errorf("missing ')' to close %s(", t.op)
		}
		if p.s[p.pos] == ')' {
			p.pos++
			break
		}
		p.pos++ // a comma: operand stops only at ',' or ')'
	}
	t.field, t.values = operands[0], operands[1:]
	if t.field == "" {
		return t, p.errorf("%s( needs a field name first", t.op)
	}
	switch {
	case arity >= 0 && len(t.values) != arity:
		return t, p.errorf("%s takes a field and %d value(s), got %d value(s)", t.op, arity, len(t.values))
	case arity < 0 && len(t.values) == 0:
		return t, p.errorf("%s takes a field and at least one value", t.op)
	}
	return t, nil
}

// operand reads one operand and leaves p at the ',' or ')' after it.
// Unquoted operands lose their surrounding spaces; quoted ones keep
// everything between the quotes, with backslash escapes.
func (p *parser) operand() (string, error) {
	p.skipSpaces()
	if p.pos < len(p.s) && (p.s[p.pos] == '"' || p.s[p.pos] == '\'') {
		q := p.s[p.pos]
		p.pos++
		var b strings.Builder
		for {
			if p.pos == len(p.s) {
				return "", p.errorf("unterminated quoted value")
			}
			c := p.s[p.pos]
			switch {
			case c == '\\' && p.pos+1 < len(p.s):
				b.WriteByte(p.s[p.pos+1])
				p.pos += 2
				continue
			case c == q:
				p.pos++
				p.skipSpaces()
				if p.pos < len(p.s) && p.s[p.pos] != ',' && p.s[p.pos] != ')' {
					return "", p.errorf("expected ',' or ')' after a quoted value, found %q", p.s[p.pos])
				}
				return b.String(), nil
			}
			b.WriteByte(c)
			p.pos++
		}
	}
	start := p.pos
	for p.pos < len(p.s) && p.s[p.pos] != ',' && p.s[p.pos] != ')' {
		c := p.s[p.pos]
		if c == '(' || c == '"' || c == '\'' || c < ' ' || c == 0x7f {
			return "", p.errorf("unexpected %q in a value; quote values that hold it", c)
		}
		p.pos++
	}
	return strings.TrimRight(p.s[start:p.pos], " "), nil
}
