package sites

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hybridsuite/hybrid/agent/jobs"
	"github.com/hybridsuite/hybrid/agent/names"
)

// DBPasswordEnv is the environment variable `bench new-site` gets the site's
// database password in. Secrets never go on a bench command line: Docker
// records an exec's arguments in its event stream and errors quote them. A
// real frappe image needs a wrapper as its bench command that passes it on
// (see test/bench/README.md).
const DBPasswordEnv = "HYBRID_DB_PASSWORD"

// nativePasswordHash is MariaDB's mysql_native_password hash of password,
// "*" and the upper-case hex of SHA1(SHA1(password)): users are created with
// IDENTIFIED BY PASSWORD '<hash>', so the clear password is in no statement
// (MariaDB's general and slow logs record statements).
func nativePasswordHash(password string) string {
	first := sha1.Sum([]byte(password))
	second := sha1.Sum(first[:])
	return "*" + strings.ToUpper(hex.EncodeToString(second[:]))
}

func (o *Operations) passwordPath(site string) string {
	return filepath.Join(o.Root, "agent", "secrets", site+".db-password")
}

// knownPassword reads the site's database password if it has one; it never
// makes one.
func (o *Operations) knownPassword(site string) (string, bool) {
	b, err := os.ReadFile(o.passwordPath(site))
	if err != nil {
		return "", false
	}
	pw := strings.TrimSpace(string(b))
	return pw, pw != ""
}

// withSiteSecrets registers the site's database password (and its hash) as
// a secret of every step of a job on a site, before the step runs: whatever
// a bench command prints, the password is not recorded in the job.
func (o *Operations) withSiteSecrets(steps func(json.RawMessage) ([]jobs.Step, error)) func(json.RawMessage) ([]jobs.Step, error) {
	return func(raw json.RawMessage) ([]jobs.Step, error) {
		list, err := steps(raw)
		if err != nil {
			return nil, err
		}
		var target struct {
			Site string `json:"site"`
		}
		if json.Unmarshal(raw, &target) != nil || names.Site(target.Site) != nil {
			return list, nil
		}
		out := make([]jobs.Step, len(list))
		for i, st := range list {
			do := st.Run
			out[i] = jobs.Step{Name: st.Name, Run: func(ctx context.Context, run *jobs.Run) error {
				if pw, ok := o.knownPassword(target.Site); ok {
					run.Secret(pw, nativePasswordHash(pw))
				}
				return do(ctx, run)
			}}
		}
		return out, nil
	}
}

// forgetPassword removes the site's password file: its database and user are
// gone, so the password opens nothing, and a later site of the same name
// gets a new one.
func (o *Operations) forgetPassword(site string) error {
	err := os.Remove(o.passwordPath(site))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// siteArchiveAndForget is site.archive with one last step: once the
// database is dropped, the site's secret file goes too.
func (o *Operations) siteArchiveAndForget(raw json.RawMessage) ([]jobs.Step, error) {
	steps, err := o.siteArchive(raw)
	if err != nil {
		return nil, err
	}
	req, err := decodeRequest[struct {
		Site string `json:"site"`
	}](raw)
	if err != nil {
		return nil, err
	}
	return append(steps, jobs.Step{Name: "remove the database password", Run: func(ctx context.Context, run *jobs.Run) error {
		if err := o.forgetPassword(req.Site); err != nil {
			return err
		}
		// The site is gone: what the bench's folder says from now on
		// makes no site.
		return o.forgetSite(req.Site)
	}}), nil
}
