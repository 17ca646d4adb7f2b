package backup

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/minio/minio-go/v7"
)

// Retention says which backups of a site are kept: the KeepLast newest, and
// any sealed less than KeepDays days ago. The newest is always kept.
type Retention struct {
	KeepLast int `json:"keep_last"`
	KeepDays int `json:"keep_days"`
}

// DefaultRetention is the policy when neither the request nor the agent's
// configuration sets one.
func DefaultRetention() Retention { return Retention{KeepLast: 7, KeepDays: 7} }

// Validate refuses a policy that would keep nothing.
func (r Retention) Validate() error {
	var errs []error
	if r.KeepLast < 1 {
		errs = append(errs, fmt.Errorf("keep_last %d: want at least 1 (the newest backup is always kept)", r.KeepLast))
	}
	if r.KeepDays < 0 {
		errs = append(errs, fmt.Errorf("keep_days %d: must not be negative", r.KeepDays))
	}
	return errors.Join(errs...)
}

// SelectPrune splits backups (of one site, in one place) into those the
// policy keeps and those it deletes, each oldest first. Order is by id (the
// bench's timestamp); age is from CreatedAt (when it was sealed).
func SelectPrune(backups []Manifest, r Retention, now time.Time) (keep, remove []Manifest) {
	sorted := append([]Manifest(nil), backups...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	keepLast := max(r.KeepLast, 1)
	// AddDate, not a Duration: days * 24h overflows past 106751 days and
	// turned "keep for a very long time" into "keep none for their age".
	cutoff := now.AddDate(0, 0, -r.KeepDays)
	for i, m := range sorted {
		newest := i >= len(sorted)-keepLast
		young := r.KeepDays > 0 && m.CreatedAt.After(cutoff)
		if newest || young {
			keep = append(keep, m)
		} else {
			remove = append(remove, m)
		}
	}
	return keep, remove
}

// Delete removes the backup at m.OffsitePrefix (as List sets it): the
// manifest first, so a deletion cut short leaves no backup that looks
// complete, then every object under the prefix.
func (o *Offsite) Delete(ctx context.Context, m Manifest) error {
	clean, _, err := ParsePrefix(m.Site, m.OffsitePrefix)
	if err != nil {
		return fmt.Errorf("delete offsite backup: %w", err)
	}
	log := o.log.With("site", m.Site, "backup", m.ID, "prefix", clean)
	remove := func(key string) error {
		return o.retry(ctx, log, "remove "+key, func() error {
			err := o.client.RemoveObject(ctx, o.bucket, key, minio.RemoveObjectOptions{})
			if isNotFound(err) {
				return nil
			}
			return err
		})
	}
	if err := remove(clean + "/" + ManifestName); err != nil {
		return fmt.Errorf("delete offsite backup %s: %w", clean, err)
	}
	for obj := range o.client.ListObjects(ctx, o.bucket, minio.ListObjectsOptions{Prefix: clean + "/", Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("delete offsite backup %s: %w", clean, obj.Err)
		}
		if err := remove(obj.Key); err != nil {
			return fmt.Errorf("delete offsite backup %s: %w", clean, err)
		}
	}
	log.Info("offsite backup deleted")
	return nil
}
