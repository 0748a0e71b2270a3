package postgres

import (
	"encoding/binary"
	"math"
	"time"
)

// pgEpochMicros is 2000-01-01 UTC, PostgreSQL's epoch, in Unix microseconds.
const pgEpochMicros = 946_684_800 * 1_000_000

// maxMicros is the last PostgreSQL timestamp that still fits a Unix
// microsecond count; PostgreSQL's own range reaches a little further, and
// 'infinity' is math.MaxInt64.
const maxMicros = math.MaxInt64 - pgEpochMicros

// decoder reads PostgreSQL's binary wire format straight from raw column
// values. It only notes that some value was bad, so that a row decodes
// without a check per column; the caller checks bad once per row and asks
// the row's columns which value it was (columns.rowError).
type decoder struct {
	bad bool
}

func (d *decoder) int8(b []byte) int64 {
	if len(b) != 8 {
		d.bad = true
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}

func (d *decoder) int4(b []byte) int32 {
	if len(b) != 4 {
		d.bad = true
		return 0
	}
	return int32(binary.BigEndian.Uint32(b))
}

// time decodes a timestamptz, microseconds since the PostgreSQL epoch, to
// UTC. Infinite timestamps have no time.Time and are refused, as are the
// few beyond year 294,000 whose Unix microseconds would overflow.
func (d *decoder) time(b []byte) time.Time {
	us := d.int8(b)
	if us > maxMicros || us == math.MinInt64 {
		d.bad = true
		return time.Time{}
	}
	return time.UnixMicro(us + pgEpochMicros).UTC()
}
