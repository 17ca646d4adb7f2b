package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hybridsuite/hybrid/agent/names"
)

// BenchStatus is a bench's state as the control plane knows it.
type BenchStatus string

// Bench states.
const (
	BenchPending  BenchStatus = "Pending"
	BenchActive   BenchStatus = "Active"
	BenchBroken   BenchStatus = "Broken"
	BenchArchived BenchStatus = "Archived"
)

func (st BenchStatus) valid() bool {
	switch st {
	case BenchPending, BenchActive, BenchBroken, BenchArchived:
		return true
	}
	return false
}

// SiteStatus is a site's state as the control plane knows it.
type SiteStatus string

// Site states.
const (
	SitePending   SiteStatus = "Pending"
	SiteActive    SiteStatus = "Active"
	SiteUpdating  SiteStatus = "Updating"
	SiteBroken    SiteStatus = "Broken"
	SiteSuspended SiteStatus = "Suspended"
	SiteArchived  SiteStatus = "Archived"
)

func (st SiteStatus) valid() bool {
	switch st {
	case SitePending, SiteActive, SiteUpdating, SiteBroken, SiteSuspended, SiteArchived:
		return true
	}
	return false
}

// Bench is a bench on a server.
type Bench struct {
	ID        string
	Server    string // the server's name
	Name      string
	Image     string
	Status    BenchStatus
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Site is a site on a bench; its name is unique on its server.
type Site struct {
	ID     string
	Server string // the server's name
	Bench  string // the bench's name
	Name   string
	Status SiteStatus
	// LastBackup and LastRestore name the last good backup taken and the
	// last backup restored (the agent's job id or backup reference).
	LastBackup    string
	LastBackupAt  time.Time
	LastRestore   string
	LastRestoreAt time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

const benchColumns = `b.id, s.name, b.name, b.image, b.status, b.created_at, b.updated_at`

func scanBench(row interface{ Scan(...any) error }) (Bench, error) {
	var b Bench
	var created, updated int64
	if err := row.Scan(&b.ID, &b.Server, &b.Name, &b.Image, &b.Status, &created, &updated); err != nil {
		return Bench{}, err
	}
	b.CreatedAt, b.UpdatedAt = fromMS(created), fromMS(updated)
	return b, nil
}

// CreateBench adds a bench to a server, Pending unless b.Status says
// otherwise. A bench name taken on that server is ErrConflict.
func (s *Store) CreateBench(ctx context.Context, b Bench) (Bench, error) {
	if b.Status == "" {
		b.Status = BenchPending
	}
	var problems []error
	if err := names.Bench(b.Name); err != nil {
		problems = append(problems, err)
	}
	if err := names.Image(b.Image); err != nil {
		problems = append(problems, err)
	}
	if !b.Status.valid() {
		problems = append(problems, fmt.Errorf("unknown status %q", b.Status))
	}
	if len(problems) > 0 {
		return Bench{}, fmt.Errorf("create bench %q: %w: %w", b.Name, ErrInvalid, errors.Join(problems...))
	}
	var out Bench
	err := s.Tx(ctx, func(tx *Store) error {
		sv, err := tx.GetServer(ctx, b.Server)
		if err != nil {
			return err
		}
		id, now := newID("bench"), tx.nowMS()
		if _, err := tx.exec(ctx, `INSERT INTO benches (id, server_id, name, image, status, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, id, sv.ID, b.Name, b.Image, string(b.Status), now, now); err != nil {
			return fmt.Errorf("create bench %q on %q: %w", b.Name, b.Server, err)
		}
		out, err = tx.GetBench(ctx, b.Server, b.Name)
		return err
	})
	return out, err
}

// GetBench returns a server's bench by name.
func (s *Store) GetBench(ctx context.Context, server, name string) (Bench, error) {
	b, err := scanBench(s.queryRow(ctx, `SELECT `+benchColumns+` FROM benches b JOIN servers s ON s.id = b.server_id
		WHERE s.name = ? AND b.name = ?`, server, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Bench{}, fmt.Errorf("bench %q on %q: %w", name, server, ErrNotFound)
	}
	if err != nil {
		return Bench{}, fmt.Errorf("get bench %q on %q: %w", name, server, err)
	}
	return b, nil
}

// ListBenches returns a server's benches by name ("" for every server's).
func (s *Store) ListBenches(ctx context.Context, server string) ([]Bench, error) {
	rows, err := s.query(ctx, `SELECT `+benchColumns+` FROM benches b JOIN servers s ON s.id = b.server_id
		WHERE ? = '' OR s.name = ? ORDER BY s.name, b.name`, server, server)
	if err != nil {
		return nil, fmt.Errorf("list benches: %w", err)
	}
	defer rows.Close()
	var out []Bench
	for rows.Next() {
		b, err := scanBench(rows)
		if err != nil {
			return nil, fmt.Errorf("list benches: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list benches: %w", err)
	}
	return out, nil
}

// UpdateBenchStatus sets a bench's status.
func (s *Store) UpdateBenchStatus(ctx context.Context, server, name string, status BenchStatus) error {
	if !status.valid() {
		return fmt.Errorf("update bench %q: %w: unknown status %q", name, ErrInvalid, status)
	}
	res, err := s.exec(ctx, `UPDATE benches SET status = ?, updated_at = ?
		WHERE name = ? AND server_id = (SELECT id FROM servers WHERE name = ?)`, string(status), s.nowMS(), name, server)
	if err != nil {
		return fmt.Errorf("update bench %q on %q: %w", name, server, err)
	}
	if err := affected(res); err != nil {
		return fmt.Errorf("bench %q on %q: %w", name, server, err)
	}
	return nil
}

const siteColumns = `t.id, s.name, b.name, t.name, t.status, t.last_backup, t.last_backup_at, t.last_restore,
	t.last_restore_at, t.created_at, t.updated_at`

const siteFrom = ` FROM sites t JOIN benches b ON b.id = t.bench_id JOIN servers s ON s.id = t.server_id`

func scanSite(row interface{ Scan(...any) error }) (Site, error) {
	var st Site
	var backupAt, restoreAt sql.NullInt64
	var created, updated int64
	if err := row.Scan(&st.ID, &st.Server, &st.Bench, &st.Name, &st.Status, &st.LastBackup, &backupAt,
		&st.LastRestore, &restoreAt, &created, &updated); err != nil {
		return Site{}, err
	}
	st.LastBackupAt, st.LastRestoreAt = fromNullMS(backupAt), fromNullMS(restoreAt)
	st.CreatedAt, st.UpdatedAt = fromMS(created), fromMS(updated)
	return st, nil
}

// CreateSite adds a site to a bench, Pending unless st.Status says
// otherwise. The name is checked by the agent's rules; a site name taken on
// that server is ErrConflict.
func (s *Store) CreateSite(ctx context.Context, st Site) (Site, error) {
	if st.Status == "" {
		st.Status = SitePending
	}
	var problems []error
	if err := names.Site(st.Name); err != nil {
		problems = append(problems, err)
	}
	if !st.Status.valid() {
		problems = append(problems, fmt.Errorf("unknown status %q", st.Status))
	}
	if len(problems) > 0 {
		return Site{}, fmt.Errorf("create site %q: %w: %w", clip(st.Name), ErrInvalid, errors.Join(problems...))
	}
	var out Site
	err := s.Tx(ctx, func(tx *Store) error {
		b, err := tx.GetBench(ctx, st.Server, st.Bench)
		if err != nil {
			return err
		}
		var serverID string
		if err := tx.queryRow(ctx, `SELECT server_id FROM benches WHERE id = ?`, b.ID).Scan(&serverID); err != nil {
			return fmt.Errorf("create site %q: %w", st.Name, err)
		}
		id, now := newID("site"), tx.nowMS()
		if _, err := tx.exec(ctx, `INSERT INTO sites (id, server_id, bench_id, name, status, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, id, serverID, b.ID, st.Name, string(st.Status), now, now); err != nil {
			return fmt.Errorf("create site %q on %q: %w", st.Name, st.Server, err)
		}
		out, err = tx.GetSite(ctx, st.Server, st.Name)
		return err
	})
	return out, err
}

// GetSite returns a server's site by name.
func (s *Store) GetSite(ctx context.Context, server, name string) (Site, error) {
	st, err := scanSite(s.queryRow(ctx, `SELECT `+siteColumns+siteFrom+` WHERE s.name = ? AND t.name = ?`, server, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Site{}, fmt.Errorf("site %q on %q: %w", clip(name), server, ErrNotFound)
	}
	if err != nil {
		return Site{}, fmt.Errorf("get site %q on %q: %w", name, server, err)
	}
	return st, nil
}

// SiteFilter selects sites for ListSites; empty fields select all.
type SiteFilter struct {
	Server string
	Bench  string // only with Server
	// Limit is the page size (default and maximum 1000).
	Limit int
	// After is the cursor ListSites returned for the previous page.
	After string
}

type siteCursor struct {
	Name     string `json:"n"`
	ServerID string `json:"s"`
}

// ListSites returns a page of sites ordered by name (then server) and the
// cursor of the next page, "" after the last one.
func (s *Store) ListSites(ctx context.Context, f SiteFilter) ([]Site, string, error) {
	limit := pageSize(f.Limit)
	var after siteCursor
	if f.After != "" {
		if err := decodeCursor(f.After, &after); err != nil {
			return nil, "", fmt.Errorf("list sites: %w", err)
		}
	}
	rows, err := s.query(ctx, `SELECT `+siteColumns+`, t.server_id`+siteFrom+`
		WHERE (? = '' OR s.name = ?) AND (? = '' OR b.name = ?)
		AND (? = 0 OR t.name > ? OR (t.name = ? AND t.server_id > ?))
		ORDER BY t.name, t.server_id LIMIT ?`,
		f.Server, f.Server, f.Bench, f.Bench,
		boolInt(f.After != ""), after.Name, after.Name, after.ServerID, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list sites: %w", err)
	}
	defer rows.Close()
	var out []Site
	var last siteCursor
	for rows.Next() {
		var serverID string
		var st Site
		var backupAt, restoreAt sql.NullInt64
		var created, updated int64
		if err := rows.Scan(&st.ID, &st.Server, &st.Bench, &st.Name, &st.Status, &st.LastBackup, &backupAt,
			&st.LastRestore, &restoreAt, &created, &updated, &serverID); err != nil {
			return nil, "", fmt.Errorf("list sites: %w", err)
		}
		st.LastBackupAt, st.LastRestoreAt = fromNullMS(backupAt), fromNullMS(restoreAt)
		st.CreatedAt, st.UpdatedAt = fromMS(created), fromMS(updated)
		if len(out) == limit {
			return out, encodeCursor(last), rows.Err()
		}
		out = append(out, st)
		last = siteCursor{Name: st.Name, ServerID: serverID}
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list sites: %w", err)
	}
	return out, "", nil
}

// UpdateSiteStatus sets a site's status.
func (s *Store) UpdateSiteStatus(ctx context.Context, server, name string, status SiteStatus) error {
	if !status.valid() {
		return fmt.Errorf("update site %q: %w: unknown status %q", clip(name), ErrInvalid, status)
	}
	return s.updateSite(ctx, server, name, `status = ?`, string(status))
}

// RecordSiteBackup records the site's last good backup.
func (s *Store) RecordSiteBackup(ctx context.Context, server, name, ref string, at time.Time) error {
	return s.updateSite(ctx, server, name, `last_backup = ?, last_backup_at = ?`, ref, msOrNil(at))
}

// RecordSiteRestore records the backup last restored into the site.
func (s *Store) RecordSiteRestore(ctx context.Context, server, name, ref string, at time.Time) error {
	return s.updateSite(ctx, server, name, `last_restore = ?, last_restore_at = ?`, ref, msOrNil(at))
}

// MoveSite puts a site on another bench of its server (an update moves
// sites to the bench of the new image).
func (s *Store) MoveSite(ctx context.Context, server, name, bench string) error {
	return s.Tx(ctx, func(tx *Store) error {
		b, err := tx.GetBench(ctx, server, bench)
		if err != nil {
			return err
		}
		return tx.updateSite(ctx, server, name, `bench_id = ?`, b.ID)
	})
}

func (s *Store) updateSite(ctx context.Context, server, name, set string, args ...any) error {
	args = append(args, s.nowMS(), name, server)
	res, err := s.exec(ctx, `UPDATE sites SET `+set+`, updated_at = ?
		WHERE name = ? AND server_id = (SELECT id FROM servers WHERE name = ?)`, args...)
	if err != nil {
		return fmt.Errorf("update site %q on %q: %w", clip(name), server, err)
	}
	if err := affected(res); err != nil {
		return fmt.Errorf("site %q on %q: %w", clip(name), server, err)
	}
	return nil
}

const maxPage = 1000

func pageSize(limit int) int {
	if limit <= 0 || limit > maxPage {
		return maxPage
	}
	return limit
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func encodeCursor(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(c string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		return fmt.Errorf("%w: bad page cursor", ErrInvalid)
	}
	return nil
}
