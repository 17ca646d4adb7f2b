package sites

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/backup"
	"github.com/hybridsuite/hybrid/agent/jobs"
)

// retention is the policy of a prune: the request's fields, else the
// agent's, else backup.DefaultRetention's.
func (o *Operations) retention(p agentapi.PruneBackups) backup.Retention {
	r := backup.DefaultRetention()
	if o.Retention.KeepLast != 0 {
		r.KeepLast = o.Retention.KeepLast
	}
	if o.Retention.KeepDays != 0 {
		r.KeepDays = o.Retention.KeepDays
	}
	if p.KeepLast != nil {
		r.KeepLast = *p.KeepLast
	}
	if p.KeepDays != nil {
		r.KeepDays = *p.KeepDays
	}
	return r
}

// sitePruneBackups deletes the site's backups the retention policy does
// not keep, local and (when asked, by default when configured) offsite.
// Only sealed backups are considered: a folder without a manifest (a
// backup being written) is never touched, and the newest sealed backup is
// always kept. The result says exactly what was deleted and kept.
func (o *Operations) sitePruneBackups(raw json.RawMessage) ([]jobs.Step, error) {
	req, err := decodeRequest[agentapi.SitePruneBackupsRequest](raw)
	if err != nil {
		return nil, err
	}
	policy := o.retention(req.PruneBackups)
	if err := policy.Validate(); err != nil {
		return nil, fmt.Errorf("retention policy: %w", err)
	}
	offsite := o.Offsite != nil
	if req.Offsite != nil {
		offsite = *req.Offsite
	}
	result := func(run *jobs.Run) (agentapi.PruneResult, error) {
		var res agentapi.PruneResult
		if err := run.Result(&res); err != nil {
			return res, err
		}
		res.KeepLast, res.KeepDays = policy.KeepLast, policy.KeepDays
		return res, nil
	}
	steps := []jobs.Step{{Name: "prune local backups", Run: func(ctx context.Context, run *jobs.Run) error {
		res, err := result(run)
		if err != nil {
			return err
		}
		dir := o.backupsDir(req.Bench, req.Site)
		if id := res.Local.Deleting; id != "" {
			if err := backup.RemoveLocal(dir, id); err != nil {
				return err
			}
			run.Log("finished deleting local backup %s", id)
			res.Local.Deleted, res.Local.Deleting = append(res.Local.Deleted, id), ""
			if err := run.SetResult(res); err != nil {
				return err
			}
		}
		list, err := backup.List(dir)
		if err != nil {
			return err
		}
		keep, remove := backup.SelectPrune(list, policy, o.now())
		res.Local.Kept = backupIDs(keep)
		// Deleted ones of an earlier attempt stay listed.
		if res.Local.Deleted == nil {
			res.Local.Deleted = []string{}
		}
		for _, m := range remove {
			res.Local.Deleting = m.ID
			if err := run.SetResult(res); err != nil {
				return err
			}
			if err := backup.RemoveLocal(dir, m.ID); err != nil {
				return err // Deleting: the re-run finishes it
			}
			run.Log("deleted local backup %s", m.ID)
			res.Local.Deleted, res.Local.Deleting = append(res.Local.Deleted, m.ID), ""
			if err := run.SetResult(res); err != nil {
				return err
			}
		}
		run.Log("kept %d local backups, deleted %d", len(keep), len(remove))
		return run.SetResult(res)
	}}}
	if offsite {
		steps = append(steps, jobs.Step{Name: "prune offsite backups", Run: func(ctx context.Context, run *jobs.Run) error {
			if o.Offsite == nil {
				return errors.New("offsite storage is not configured on this agent (sites.offsite)")
			}
			res, err := result(run)
			if err != nil {
				return err
			}
			if res.Offsite == nil {
				res.Offsite = &agentapi.PrunedBackups{Deleted: []string{}}
			}
			if prefix := res.Offsite.Deleting; prefix != "" {
				if err := o.Offsite.Delete(ctx, backup.Manifest{Site: req.Site, OffsitePrefix: prefix}); err != nil {
					return err
				}
				run.Log("finished deleting offsite backup %s", prefix)
				res.Offsite.Deleted, res.Offsite.Deleting = append(res.Offsite.Deleted, prefix), ""
				if err := run.SetResult(res); err != nil {
					return err
				}
			}
			list, err := o.Offsite.List(ctx, req.Site)
			if err != nil {
				return err
			}
			keep, remove := backup.SelectPrune(list, policy, o.now())
			res.Offsite.Kept = offsitePrefixes(keep)
			for _, m := range remove {
				res.Offsite.Deleting = m.OffsitePrefix
				if err := run.SetResult(res); err != nil {
					return err
				}
				if err := o.Offsite.Delete(ctx, m); err != nil {
					return err // Deleting: the re-run finishes it
				}
				run.Log("deleted offsite backup %s", m.OffsitePrefix)
				res.Offsite.Deleted, res.Offsite.Deleting = append(res.Offsite.Deleted, m.OffsitePrefix), ""
				if err := run.SetResult(res); err != nil {
					return err
				}
			}
			run.Log("kept %d offsite backups, deleted %d", len(keep), len(remove))
			return run.SetResult(res)
		}})
	}
	return steps, nil
}

func backupIDs(ms []backup.Manifest) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func offsitePrefixes(ms []backup.Manifest) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.OffsitePrefix)
	}
	return out
}
