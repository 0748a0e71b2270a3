package postgres

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
)

// pgEpochMicros is 2000-01-01 UTC, PostgreSQL's epoch, in Unix microseconds.
const pgEpochMicros = 946_684_800 * 1_000_000

// decoder reads PostgreSQL's binary wire format straight from raw column
// values. It keeps the first error so that a row decodes without a check
// per column; the caller checks err once per row.
type decoder struct {
	err error
}

var errBadValue = errors.New("unexpected null or malformed value in a not-null column")

func (d *decoder) int8(b []byte) int64 {
	if len(b) != 8 {
		d.err = errBadValue
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}

func (d *decoder) int4(b []byte) int32 {
	if len(b) != 4 {
		d.err = errBadValue
		return 0
	}
	return int32(binary.BigEndian.Uint32(b))
}

// time decodes a timestamptz, microseconds since the PostgreSQL epoch, to
// UTC. Infinite timestamps have no time.Time and are refused.
func (d *decoder) time(b []byte) time.Time {
	us := d.int8(b)
	if us == math.MaxInt64 || us == math.MinInt64 {
		d.err = errors.New("infinite timestamp")
		return time.Time{}
	}
	return time.UnixMicro(us + pgEpochMicros).UTC()
}
