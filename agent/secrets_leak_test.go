package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// requireSecretsAbsent fails the test when any secret's value occurs in
// content, naming the secret and where it was found (never the value).
func requireSecretsAbsent(t *testing.T, where string, content []byte, secrets map[string]string) {
	t.Helper()
	for name, value := range secrets {
		if i := bytes.Index(content, []byte(value)); i >= 0 {
			start, end := max(0, i-120), min(len(content), i+len(value)+40)
			around := strings.ReplaceAll(string(content[start:end]), value, "<"+name+">")
			t.Errorf("%s holds the %s: ...%s...", where, name, around)
		}
	}
}

// refusingS3 is the offsite storage of the secrets test: gofakes3, or, while
// refusing is set, an S3 that refuses every request with an error quoting
// the access key (as a verbose S3-compatible server might), or, while down
// is set, one that drops every connection.
type refusingS3 struct {
	*httptest.Server
	refusing atomic.Bool
	down     atomic.Bool // every connection is dropped unanswered
}

func newRefusingS3(t *testing.T, accessKey string) *refusingS3 {
	backend := s3mem.New()
	require.NoError(t, backend.CreateBucket("backups"))
	fake := gofakes3.New(backend).Server()
	s := &refusingS3{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.down.Load() {
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		if !s.refusing.Load() {
			fake.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidAccessKeyId</Code>`+
			`<Message>The access key %s is not known here.</Message><AWSAccessKeyId>%s</AWSAccessKeyId>`+
			`<RequestId>1</RequestId></Error>`, accessKey, accessKey)
	}))
	t.Cleanup(s.Close)
	return s
}

// callbackReceiver records the bodies of the agent's callbacks.
type callbackReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies map[string][]byte // by job id
}

func newCallbackReceiver(t *testing.T) *callbackReceiver {
	c := &callbackReceiver{bodies: map[string][]byte{}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.bodies[r.Header.Get(agentapi.JobIDHeader)] = body
		c.mu.Unlock()
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *callbackReceiver) got(id string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.bodies[id]
	return b, ok
}

// TestSecrets_EveryJobFailingWhereItHandlesOne_NoSecretInStoreAPICallbacksLogsDockerEventsOrMariaDBLog
// plants known secrets (site database passwords, the offsite keys, the API
// token, the MariaDB admin password), makes every job type that handles one
// fail at each step that does (MariaDB refusing, the bench failing and
// printing the password, S3 refusing and quoting its key), and looks for
// them in the job store's bytes, every API answer, the callback bodies, the
// agent's log, Docker's events and MariaDB's general log.
func TestSecrets_EveryJobFailingWhereItHandlesOne_NoSecretInStoreAPICallbacksLogsDockerEventsOrMariaDBLog(t *testing.T) {
	env := newSiteEnv(t)
	start := time.Now()

	const (
		accessKey = "AKIDPLANTEDACCESS0042"
		secretKey = "planted-s3-secret-key-7c0ffee"
	)
	passwords := map[string]string{ // sites and their planted database passwords
		"ok.example.com":      "0badc0de0badc0de0badc0de00000001",
		"refused.example.com": "0badc0de0badc0de0badc0de00000002",
		"halfway.example.com": "0badc0de0badc0de0badc0de00000003",
	}
	s3 := newRefusingS3(t, accessKey)
	keys := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(keys, "access"), []byte(accessKey+"\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(keys, "secret"), []byte(secretKey+"\n"), 0o600))
	cfg := env.cfg
	cfg.Sites.Offsite = OffsiteConfig{Endpoint: strings.TrimPrefix(s3.URL, "http://"), Bucket: "backups",
		AccessKeyFile: filepath.Join(keys, "access"), SecretKeyFile: filepath.Join(keys, "secret"), Insecure: true}
	secretsDir := filepath.Join(cfg.Root, "agent", "secrets")
	require.NoError(t, os.MkdirAll(secretsDir, 0o700))
	for site, pw := range passwords {
		require.NoError(t, os.WriteFile(filepath.Join(secretsDir, site+".db-password"), []byte(pw+"\n"), 0o600))
	}

	generalLog := filepath.Join(env.db.Dir(), "general.log")
	env.db.Exec(t, "SET GLOBAL general_log_file = '"+generalLog+"'", "SET GLOBAL general_log = 1")
	t.Cleanup(func() { env.db.Exec(t, "SET GLOBAL general_log = 0") })

	ag := startSiteAgent(t, cfg)
	secrets := map[string]string{"offsite access key": accessKey, "offsite secret key": secretKey,
		"API token": ag.api.token, "MariaDB admin password": "admin-secret"}
	for site, pw := range passwords {
		secrets["database password of "+site] = pw
	}

	callbacks := newCallbackReceiver(t)
	var answers bytes.Buffer // every API answer
	call := func(method, path string, body any, id string) (int, []byte) {
		var r io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			require.NoError(t, err)
			r = bytes.NewReader(b)
		}
		req, err := http.NewRequest(method, ag.api.base+path, r)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+ag.api.token)
		if id != "" {
			req.Header.Set(agentapi.JobIDHeader, id)
			req.Header.Set(agentapi.CallbackHeader, callbacks.URL+"/done")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		answers.Write(data)
		return resp.StatusCode, data
	}
	var ids []string
	// job runs a job to its end, its answers and callback recorded.
	job := func(path string, body any, want agentapi.Status) agentapi.Job {
		t.Helper()
		id := fmt.Sprintf("sec-%d", len(ids))
		ids = append(ids, id)
		code, data := call(http.MethodPost, path, body, id)
		require.Equal(t, http.StatusAccepted, code, "%s: %s", path, data)
		var j agentapi.Job
		require.Eventually(t, func() bool {
			_, data := call(http.MethodGet, "/jobs/"+id, nil, "")
			var list []agentapi.Job
			require.NoError(t, json.Unmarshal(data, &list))
			j = list[0]
			return j.Status.Ended()
		}, 3*time.Minute, 200*time.Millisecond, "job %s (%s) ends", id, path)
		require.Equal(t, want, j.Status, "job %s (%s): %s", id, path, j.Error)
		return j
	}
	failsAt := func(step string, j agentapi.Job) {
		t.Helper()
		require.Equal(t, step, failedStep(j), "job %s: %s", j.ID, j.Error)
	}

	bench := fmt.Sprintf("se%d", time.Now().UnixNano()%1e9)
	env.removeBench(t, bench)
	job("/benches", agentapi.NewBench{Name: bench, Image: env.image}, agentapi.Success)
	sites := "/benches/" + bench + "/sites"
	site := sites + "/ok.example.com"
	siteDir := filepath.Join(cfg.Root, "benches", bench, "sites", "ok.example.com")

	// site.new: MariaDB refuses (the GRANT, after the user was made with the
	// password's hash); the bench fails printing the password.
	env.db.Exec(t, "REVOKE GRANT OPTION ON *.* FROM 'hybrid_admin'@'%'")
	env.killAdminConnections(t)
	failsAt("create database", job(sites, agentapi.NewSite{Name: "refused.example.com"}, agentapi.Failure))
	env.db.Exec(t, "GRANT ALL PRIVILEGES ON *.* TO 'hybrid_admin'@'%' WITH GRANT OPTION")
	env.killAdminConnections(t)
	hook := filepath.Join(cfg.Root, "benches", bench, "sites", "fail_new_site")
	require.NoError(t, os.WriteFile(hook, nil, 0o644))
	halfway := job(sites, agentapi.NewSite{Name: "halfway.example.com"}, agentapi.Failure)
	failsAt("bench new-site", halfway)
	require.Contains(t, halfway.Error, "failed on purpose", "the bench's own message is kept, its secret redacted")
	require.Contains(t, halfway.Error, "[redacted]")
	require.NoError(t, os.Remove(hook))
	job(sites, agentapi.NewSite{Name: "ok.example.com"}, agentapi.Success)

	// site.backup: the bench fails printing the password; S3 refuses the upload.
	require.NoError(t, os.WriteFile(filepath.Join(siteDir, "fail_backup"), nil, 0o644))
	failsAt("bench backup", job(site+"/backup", agentapi.Backup{Offsite: true}, agentapi.Failure))
	require.NoError(t, os.Remove(filepath.Join(siteDir, "fail_backup")))
	s3.refusing.Store(true)
	failsAt("upload offsite", job(site+"/backup", agentapi.Backup{Offsite: true}, agentapi.Failure))

	// site.restore: S3 refuses the download, then is unreachable; the bench
	// fails printing the password.
	failsAt("fetch backup", job(site+"/restore", agentapi.Restore{Object: "ok.example.com/2026-01-01/20260101_000000"}, agentapi.Failure))
	s3.down.Store(true)
	failsAt("fetch backup", job(site+"/restore", agentapi.Restore{Object: "ok.example.com/2026-01-02/20260102_000000"}, agentapi.Failure))
	s3.down.Store(false)
	local := job(site+"/backup", agentapi.Backup{}, agentapi.Success)
	var made struct {
		Dir string `json:"dir"`
	}
	require.NoError(t, json.Unmarshal(local.Result, &made))
	require.NoError(t, os.WriteFile(filepath.Join(siteDir, "fail_restore"), nil, 0o644))
	failsAt("bench restore", job(site+"/restore", agentapi.Restore{Path: filepath.Base(made.Dir)}, agentapi.Failure))
	require.NoError(t, os.Remove(filepath.Join(siteDir, "fail_restore")))

	// site.migrate fails (and restores its backup); site.archive's last
	// backup cannot go offsite.
	require.NoError(t, os.WriteFile(filepath.Join(siteDir, "fail_migrate"), nil, 0o644))
	failsAt("migrate", job(site+"/migrate", nil, agentapi.Failure))
	require.NoError(t, os.Remove(filepath.Join(siteDir, "fail_migrate")))
	failsAt("upload offsite", job(site+"/archive", agentapi.Archive{Backup: true}, agentapi.Failure))
	s3.refusing.Store(false)

	// Archived, the site's password file goes with its database.
	job(site+"/archive", agentapi.Archive{}, agentapi.Success)
	require.NoFileExists(t, filepath.Join(secretsDir, "ok.example.com.db-password"))
	require.False(t, env.databaseExists(t, "ok.example.com"))

	// Wrong tokens are answered without echoing anything.
	for _, token := range []string{"", "x", ag.api.token + "x"} {
		req, _ := http.NewRequest(http.MethodGet, ag.api.base+"/jobs", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answers.Write(data)
	}
	call(http.MethodGet, "/jobs", nil, "")
	call(http.MethodGet, "/jobs/"+strings.Join(ids, ","), nil, "")

	// Every callback arrived.
	require.Eventually(t, func() bool {
		for _, id := range ids {
			if _, ok := callbacks.got(id); !ok {
				return false
			}
		}
		return true
	}, time.Minute, 100*time.Millisecond, "a callback for every job")

	// Now look for the secrets everywhere.
	for _, name := range []string{"jobs.db", "jobs.db-wal", "jobs.db-shm"} {
		data, err := os.ReadFile(filepath.Join(cfg.Root, "agent", name))
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		requireSecretsAbsent(t, "the job store file "+name, data, secrets)
	}
	requireSecretsAbsent(t, "the API answers", answers.Bytes(), secrets)
	for _, id := range ids {
		body, _ := callbacks.got(id)
		requireSecretsAbsent(t, "the callback body of job "+id, body, secrets)
	}
	requireSecretsAbsent(t, "the agent's log", []byte(ag.logs.String()), secrets)
	requireSecretsAbsent(t, "Docker's events", dockerEvents(t, env.cli, start), secrets)
	general, err := os.ReadFile(generalLog)
	require.NoError(t, err)
	requireSecretsAbsent(t, "MariaDB's general log", general, secrets)
	require.Contains(t, string(general), "IDENTIFIED BY PASSWORD '*", "the general log saw the users made, by their hash")
}

// dockerEvents is every event of the Docker engine since start, as the
// JSON lines `docker events --since <start> --until <now> --format '{{json .}}'` prints.
func dockerEvents(t *testing.T, cli *client.Client, start time.Time) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := cli.Events(ctx, client.EventsListOptions{
		Since: fmt.Sprint(start.Add(-time.Second).Unix()),
		Until: fmt.Sprint(time.Now().Add(time.Second).Unix()),
	})
	var out bytes.Buffer
	n := 0
	for {
		select {
		case m := <-res.Messages:
			b, err := json.Marshal(m)
			require.NoError(t, err)
			out.Write(append(b, '\n'))
			n++
		case err := <-res.Err:
			if err != nil && err != io.EOF {
				require.NoError(t, err)
			}
			require.Positive(t, n, "the engine reported the test's events")
			require.Contains(t, out.String(), "exec_create", "the bench commands' exec events are there")
			return out.Bytes()
		}
	}
}
