package postgres

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/exportd/exportd"
)

// Files records the parts and files an export has committed. It is the
// one source of truth for where a retried attempt resumes, for the
// manifest and for file listings: whatever grows with an export lives
// here, never in a Temporal payload.
type Files struct {
	Pool *pgxpool.Pool
}

// Part is one committed part of an export: the same records in every
// requested format, with their share of the tally.
type Part struct {
	ExportID    string
	Part        int
	Rows        int64
	FirstKey    exportd.Key
	LastKey     exportd.Key
	Tally       exportd.Tally // Orders, Transactions, Amount; Locations is ignored
	Totals      exportd.Totals
	Locations   []string // distinct location ids of the part's records
	Files       []exportd.FileInfo
	CommittedAt time.Time
}

// ErrFileNotFound is returned by File for a name the export never
// committed.
var ErrFileNotFound = errors.New("file not found")

// CommitParts records parts and their files in one transaction. Recording
// a part again (a retried attempt rewrites parts after its resume point to
// the same bytes) replaces the earlier record, so a part is never counted
// twice.
func (f *Files) CommitParts(ctx context.Context, ps []Part) error {
	if len(ps) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, f.Pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, p := range ps {
			queuePart(b, p)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("error recording parts %d-%d of export %s: %w", ps[0].Part, ps[len(ps)-1].Part, ps[0].ExportID, err)
	}
	return nil
}

// queuePart queues the statements that record p.
func queuePart(b *pgx.Batch, p Part) {
	locs := p.Locations
	if locs == nil {
		locs = []string{}
	}
	first, last := keyArgs(p.FirstKey), keyArgs(p.LastKey)
	b.Queue(`INSERT INTO export_parts (export_id, part, rows, first_at, first_id, last_at, last_id,
				orders, transactions, amount, subtotal, tax, tip, total, pay_amount, locations, committed_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
			ON CONFLICT (export_id, part) DO UPDATE SET rows = excluded.rows,
				first_at = excluded.first_at, first_id = excluded.first_id, last_at = excluded.last_at, last_id = excluded.last_id,
				orders = excluded.orders, transactions = excluded.transactions, amount = excluded.amount,
				subtotal = excluded.subtotal, tax = excluded.tax, tip = excluded.tip, total = excluded.total,
				pay_amount = excluded.pay_amount, locations = excluded.locations, committed_at = excluded.committed_at`,
		p.ExportID, p.Part, p.Rows, first[0], first[1], last[0], last[1],
		p.Tally.Orders, p.Tally.Transactions, p.Tally.Amount,
		p.Totals.Subtotal, p.Totals.Tax, p.Totals.Tip, p.Totals.Total, p.Totals.Amount,
		locs, p.CommittedAt)
	for i, fi := range p.Files {
		b.Queue(`INSERT INTO export_files (export_id, part, seq, name, format, rows, bytes, sha256)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
				ON CONFLICT (export_id, part, seq) DO UPDATE SET name = excluded.name, format = excluded.format,
					rows = excluded.rows, bytes = excluded.bytes, sha256 = excluded.sha256`,
			p.ExportID, p.Part, i, fi.Name, string(fi.Format), fi.Rows, fi.Bytes, fi.SHA256)
	}
}

func keyArgs(k exportd.Key) [2]any {
	if k.IsZero() {
		return [2]any{nil, nil}
	}
	return [2]any{k.CreatedAt, k.ID}
}

// Resume is where an export's next attempt starts: after the last part
// recorded, with the rows recorded so far.
type Resume struct {
	Part        int         // the next part number
	Rows        int64       // rows in the recorded parts
	Cursor      exportd.Key // the last recorded key; zero starts at the window's start
	CommittedAt time.Time   // when the last part was recorded; zero when none was
}

// Resume reads where exportID's next attempt starts. Parts are recorded in
// order, so the recorded parts are always 0..n-1.
func (f *Files) Resume(ctx context.Context, exportID string) (Resume, error) {
	return f.ResumeRange(ctx, exportID, 0, 1<<31-1)
}

// ResumeRange reads where the next attempt at the part numbers [from,
// to) of exportID starts, a partition's: Part counts from from.
func (f *Files) ResumeRange(ctx context.Context, exportID string, from, to int) (Resume, error) {
	var r Resume
	var lastAt *time.Time
	var lastID *int64
	var committed *time.Time
	var n int
	err := f.Pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(rows), 0),
			(SELECT last_at FROM export_parts WHERE export_id = $1 AND part >= $2 AND part < $3 AND rows > 0 ORDER BY part DESC LIMIT 1),
			(SELECT last_id FROM export_parts WHERE export_id = $1 AND part >= $2 AND part < $3 AND rows > 0 ORDER BY part DESC LIMIT 1),
			max(committed_at)
		FROM export_parts WHERE export_id = $1 AND part >= $2 AND part < $3`, exportID, from, to).Scan(&n, &r.Rows, &lastAt, &lastID, &committed)
	if err != nil {
		return Resume{}, fmt.Errorf("error reading the resume point of export %s: %w", exportID, err)
	}
	r.Part = from + n
	if lastAt != nil && lastID != nil {
		r.Cursor = exportd.Key{CreatedAt: lastAt.UTC(), ID: *lastID}
	}
	if committed != nil {
		r.CommittedAt = committed.UTC()
	}
	return r, nil
}

// Summary is what an export's recorded parts add up to.
type Summary struct {
	Parts   int
	Files   int
	Rows    int64
	Tally   exportd.Tally // Locations counts distinct locations across parts
	Totals  exportd.Totals
	LastKey exportd.Key
}

// Summary adds up exportID's recorded parts.
func (f *Files) Summary(ctx context.Context, exportID string) (Summary, error) {
	var s Summary
	var lastAt *time.Time
	var lastID *int64
	err := f.Pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(rows), 0),
			coalesce(sum(orders), 0), coalesce(sum(transactions), 0), coalesce(sum(amount), 0),
			coalesce(sum(subtotal), 0), coalesce(sum(tax), 0), coalesce(sum(tip), 0), coalesce(sum(total), 0), coalesce(sum(pay_amount), 0),
			(SELECT count(DISTINCT l) FROM export_parts p, unnest(p.locations) l WHERE p.export_id = $1),
			(SELECT count(*) FROM export_files WHERE export_id = $1),
			(SELECT last_at FROM export_parts WHERE export_id = $1 AND rows > 0 ORDER BY part DESC LIMIT 1),
			(SELECT last_id FROM export_parts WHERE export_id = $1 AND rows > 0 ORDER BY part DESC LIMIT 1)
		FROM export_parts WHERE export_id = $1`, exportID).Scan(&s.Parts, &s.Rows,
		&s.Tally.Orders, &s.Tally.Transactions, &s.Tally.Amount,
		&s.Totals.Subtotal, &s.Totals.Tax, &s.Totals.Tip, &s.Totals.Total, &s.Totals.Amount,
		&s.Tally.Locations, &s.Files, &lastAt, &lastID)
	if err != nil {
		return Summary{}, fmt.Errorf("error summing the parts of export %s: %w", exportID, err)
	}
	if lastAt != nil && lastID != nil {
		s.LastKey = exportd.Key{CreatedAt: lastAt.UTC(), ID: *lastID}
	}
	return s, nil
}

const fileColumns = `f.name, f.format, f.part, f.rows, f.bytes, f.sha256, p.first_at, p.first_id, p.last_at, p.last_id`

func scanFile(row pgx.Row, extra ...any) (exportd.FileInfo, error) {
	var fi exportd.FileInfo
	var firstAt, lastAt *time.Time
	var firstID, lastID *int64
	dest := append([]any{&fi.Name, &fi.Format, &fi.Part, &fi.Rows, &fi.Bytes, &fi.SHA256, &firstAt, &firstID, &lastAt, &lastID}, extra...)
	if err := row.Scan(dest...); err != nil {
		return fi, err
	}
	if firstAt != nil && firstID != nil {
		fi.FirstKey = exportd.Key{CreatedAt: firstAt.UTC(), ID: *firstID}
	}
	if lastAt != nil && lastID != nil {
		fi.LastKey = exportd.Key{CreatedAt: lastAt.UTC(), ID: *lastID}
	}
	return fi, nil
}

// Each calls fn with every recorded file of exportID in manifest order
// (part, then format as requested), streaming, so an export's file count
// never sits in memory.
func (f *Files) Each(ctx context.Context, exportID string, fn func(exportd.FileInfo) error) error {
	rows, err := f.Pool.Query(ctx, `SELECT `+fileColumns+` FROM export_files f
		JOIN export_parts p ON p.export_id = f.export_id AND p.part = f.part
		WHERE f.export_id = $1 ORDER BY f.part, f.seq`, exportID)
	if err != nil {
		return fmt.Errorf("error listing the files of export %s: %w", exportID, err)
	}
	defer rows.Close()
	for rows.Next() {
		fi, err := scanFile(rows)
		if err != nil {
			return fmt.Errorf("error listing the files of export %s: %w", exportID, err)
		}
		if err := fn(fi); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("error listing the files of export %s: %w", exportID, err)
	}
	return nil
}

// List returns up to limit files of exportID in manifest order, after the
// position cursor names ("" starts at the first), and the cursor of the
// next page ("" when there is none). A malformed cursor is
// ErrInvalidCursor.
func (f *Files) List(ctx context.Context, exportID, cursor string, limit int) ([]exportd.FileInfo, string, error) {
	part, seq, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	rows, err := f.Pool.Query(ctx, `SELECT `+fileColumns+`, f.seq FROM export_files f
		JOIN export_parts p ON p.export_id = f.export_id AND p.part = f.part
		WHERE f.export_id = $1 AND (f.part, f.seq) > ($2, $3) ORDER BY f.part, f.seq LIMIT $4`,
		exportID, part, seq, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("error listing the files of export %s: %w", exportID, err)
	}
	defer rows.Close()
	out := make([]exportd.FileInfo, 0, limit+1)
	var lastSeq int
	for rows.Next() && len(out) < limit+1 {
		fi, err := scanFile(rows, &seq)
		if err != nil {
			return nil, "", fmt.Errorf("error listing the files of export %s: %w", exportID, err)
		}
		if len(out) < limit {
			lastSeq = seq
		}
		out = append(out, fi)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("error listing the files of export %s: %w", exportID, err)
	}
	if len(out) <= limit {
		return out, "", nil
	}
	out = out[:limit]
	return out, encodeCursor(out[limit-1].Part, lastSeq), nil
}

// ErrInvalidCursor is returned by List for a cursor it did not issue.
var ErrInvalidCursor = errors.New("invalid cursor")

func encodeCursor(part, seq int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(part) + "." + strconv.Itoa(seq)))
}

func decodeCursor(c string) (part, seq int, err error) {
	if c == "" {
		return -1, 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) > 32 {
		return 0, 0, ErrInvalidCursor
	}
	ps, ss, ok := strings.Cut(string(b), ".")
	if !ok {
		return 0, 0, ErrInvalidCursor
	}
	part, err1 := strconv.Atoi(ps)
	seq, err2 := strconv.Atoi(ss)
	if err1 != nil || err2 != nil || part < 0 || seq < 0 || part > 1<<30 || seq > 1<<14 {
		return 0, 0, ErrInvalidCursor
	}
	return part, seq, nil
}

// File returns the recorded file of exportID named name, or
// ErrFileNotFound.
func (f *Files) File(ctx context.Context, exportID, name string) (exportd.FileInfo, error) {
	fi, err := scanFile(f.Pool.QueryRow(ctx, `SELECT `+fileColumns+` FROM export_files f
		JOIN export_parts p ON p.export_id = f.export_id AND p.part = f.part
		WHERE f.export_id = $1 AND f.name = $2`, exportID, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return fi, ErrFileNotFound
	}
	if err != nil {
		return fi, fmt.Errorf("error reading file %s of export %s: %w", name, exportID, err)
	}
	return fi, nil
}

// Recorded reports whether exportID has any recorded part. Exports
// finished before the record existed have none; readers then fall back to
// their manifest.
func (f *Files) Recorded(ctx context.Context, exportID string) (bool, error) {
	var ok bool
	if err := f.Pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM export_parts WHERE export_id = $1)", exportID).Scan(&ok); err != nil {
		return false, fmt.Errorf("error reading the record of export %s: %w", exportID, err)
	}
	return ok, nil
}

// Delete forgets exportID's parts and files, once they are purged from
// the blob store, or before an export starts over.
func (f *Files) Delete(ctx context.Context, exportID string) error {
	err := pgx.BeginFunc(ctx, f.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM export_files WHERE export_id = $1", exportID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM export_partitions WHERE export_id = $1", exportID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DELETE FROM export_parts WHERE export_id = $1", exportID)
		return err
	})
	if err != nil {
		return fmt.Errorf("error forgetting the files of export %s: %w", exportID, err)
	}
	return nil
}
