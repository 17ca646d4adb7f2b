package sites

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hybridsuite/hybrid/internal/atomicfile"
)

// A claim reserves a bench or site name for the job creating it, from its
// first step until it succeeds (or its undo ends): two jobs creating the
// same name (two deliveries racing past the API's checks) cannot both go
// on, and a failed job's undo only takes back what its own job made.
type claimRecord struct {
	Bench string `json:"bench"`
	Job   string `json:"job"`
}

func (o *Operations) claimPath(kind, name string) string {
	return filepath.Join(o.Root, "agent", "claims", kind+"-"+name)
}

// claim takes the name for job; fresh is false when the job held it
// already (a step run again). A name another job holds is an error naming
// that job.
func (o *Operations) claim(kind, name, bench, job string) (fresh bool, err error) {
	path := o.claimPath(kind, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("claim %s %s: %w", kind, name, err)
	}
	data, _ := json.Marshal(claimRecord{Bench: bench, Job: job})
	// Written whole beside it, then linked in: link fails when the name is
	// taken, so the claim is exclusive and never seen half-written.
	tmp := path + ".new-" + job
	if err := atomicfile.WriteFile(tmp, data, 0o600); err != nil {
		return false, fmt.Errorf("claim %s %s: %w", kind, name, err)
	}
	defer os.Remove(tmp)
	err = os.Link(tmp, path)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return false, fmt.Errorf("claim %s %s: %w", kind, name, err)
	}
	held, ok := o.claimHolder(kind, name)
	if ok && held.Job == job {
		return false, nil
	}
	return false, fmt.Errorf("%s %s is being created on bench %s by job %s", kind, name, held.Bench, held.Job)
}

func (o *Operations) claimHolder(kind, name string) (claimRecord, bool) {
	var c claimRecord
	data, err := os.ReadFile(o.claimPath(kind, name))
	if err != nil || json.Unmarshal(data, &c) != nil {
		return c, false
	}
	return c, true
}

// release gives the name back if job holds it.
func (o *Operations) release(kind, name, job string) error {
	held, ok := o.claimHolder(kind, name)
	if !ok || held.Job != job {
		return nil
	}
	if err := os.Remove(o.claimPath(kind, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("release the claim on %s %s: %w", kind, name, err)
	}
	return nil
}

// A site record says which bench the agent created a site on: written by
// site.new before the bench makes the site, removed by its undo and by
// site.archive. A bench can write anything in its sites folder, including
// another site's folder and site_config.json; without the record, that
// would make the name "exist" on it: nginx would route the name to it (or
// refuse every route, the name being on two benches), and the name could
// be neither created elsewhere nor told apart from the real one.
func (o *Operations) recordPath(site string) string {
	return filepath.Join(o.Root, "agent", "sites", site+".json")
}

// recordSite notes that site is on bench.
func (o *Operations) recordSite(site, bench string) error {
	path := o.recordPath(site)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("record site %s: %w", site, err)
	}
	data, _ := json.Marshal(struct {
		Bench string `json:"bench"`
	}{bench})
	if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("record site %s: %w", site, err)
	}
	return nil
}

// recordedBench is the bench the agent created site on.
func (o *Operations) recordedBench(site string) (string, bool) {
	var r struct {
		Bench string `json:"bench"`
	}
	data, err := os.ReadFile(o.recordPath(site))
	if err != nil || json.Unmarshal(data, &r) != nil || r.Bench == "" {
		return "", false
	}
	return r.Bench, true
}

// forgetSite removes the site's record.
func (o *Operations) forgetSite(site string) error {
	if err := os.Remove(o.recordPath(site)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the record of site %s: %w", site, err)
	}
	return nil
}
