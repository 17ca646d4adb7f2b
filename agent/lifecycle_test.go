package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/benches"
	"github.com/hybridsuite/hybrid/internal/webauth"
	"github.com/hybridsuite/hybrid/test/bench/benchimage"
	"github.com/hybridsuite/hybrid/test/dockertest"
	"github.com/hybridsuite/hybrid/test/mariadbtest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// apiClient talks to the agent's job API as the control plane does.
type apiClient struct {
	t     *testing.T
	base  string
	token string
}

func (c apiClient) do(method, path string, body any, jobID string) (int, []byte) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(c.t, err)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	require.NoError(c.t, err)
	req.Header.Set("Authorization", "Bearer "+c.token)
	if jobID != "" {
		req.Header.Set(agentapi.JobIDHeader, jobID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return resp.StatusCode, data
}

// run posts a job and waits until it ends Success, returning it.
func (c apiClient) run(path string, body any) agentapi.Job {
	c.t.Helper()
	code, data := c.do(http.MethodPost, path, body, "")
	require.Equal(c.t, http.StatusAccepted, code, "%s: %s", path, data)
	var created agentapi.JobCreated
	require.NoError(c.t, json.Unmarshal(data, &created))
	var job agentapi.Job
	require.Eventually(c.t, func() bool {
		code, data := c.do(http.MethodGet, "/jobs/"+created.Job, nil, "")
		require.Equal(c.t, http.StatusOK, code, string(data))
		var list []agentapi.Job
		require.NoError(c.t, json.Unmarshal(data, &list))
		job = list[0]
		return job.Status.Ended()
	}, 3*time.Minute, 200*time.Millisecond, "job %s (%s) ends", created.Job, path)
	if job.Status != agentapi.Success {
		var b strings.Builder
		for _, s := range job.Steps {
			fmt.Fprintf(&b, "\n  step %q %s: %s", s.Name, s.Status, s.Output)
		}
		c.t.Fatalf("job %s (%s) ended %s: %s%s", job.ID, path, job.Status, job.Error, b.String())
	}
	return job
}

// runFailing posts a job and waits until it ends Failure, returning it.
func (c apiClient) runFailing(path string, body any) agentapi.Job {
	c.t.Helper()
	code, data := c.do(http.MethodPost, path, body, "")
	require.Equal(c.t, http.StatusAccepted, code, "%s: %s", path, data)
	var created agentapi.JobCreated
	require.NoError(c.t, json.Unmarshal(data, &created))
	var job agentapi.Job
	require.Eventually(c.t, func() bool {
		_, data := c.do(http.MethodGet, "/jobs/"+created.Job, nil, "")
		var list []agentapi.Job
		require.NoError(c.t, json.Unmarshal(data, &list))
		job = list[0]
		return job.Status.Ended()
	}, 3*time.Minute, 200*time.Millisecond, "job %s (%s) ends", created.Job, path)
	require.Equal(c.t, agentapi.Failure, job.Status, "job %s (%s)", job.ID, path)
	return job
}

// siteGet asks a site, through nginx, for path.
func siteGet(t *testing.T, nginxAddr, site, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+nginxAddr+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Host = site
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// siteEnv is what the site operations need, all real: the Docker engine
// with the stand-in bench image, a MariaDB server the bench containers reach
// through the bridge's gateway, S3-compatible storage in the test process,
// and an agent configuration using them with its own nginx.
type siteEnv struct {
	cfg       Config
	cli       *client.Client
	image     string
	s3URL     string
	nginxAddr string
	db        *mariadbtest.Server
}

func newSiteEnv(t *testing.T) siteEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: Docker, MariaDB, nginx")
	}
	if os.Getuid() != 0 {
		t.Skip("site operations run nginx and bench folders owned by uid 1000: run as root")
	}
	ctx := context.Background()
	cli := dockertest.Client(t)
	image := benchimage.Build(ctx, t, cli)

	db := mariadbtest.StartBound(t, "0.0.0.0")
	db.Exec(t, "CREATE USER 'hybrid_admin'@'%' IDENTIFIED BY 'admin-secret'",
		"GRANT ALL PRIVILEGES ON *.* TO 'hybrid_admin'@'%' WITH GRANT OPTION")
	adminCreds := mariadbtest.WriteCredentialsFile(t, "hybrid_admin", "admin-secret", "127.0.0.1", db.Port())

	backend := s3mem.New()
	require.NoError(t, backend.CreateBucket("backups"))
	s3 := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(s3.Close)
	keys := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(keys, "access"), []byte("AKIDTEST\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(keys, "secret"), []byte("secret-key-test\n"), 0o600))

	nginxAddr := freeAddr(t)
	cfg := DefaultConfig()
	cfg.Root = t.TempDir()
	cfg.Host.Enabled, cfg.MariaDB.Enabled = false, false
	cfg.Sites.AdminCredentialsFile = adminCreds
	cfg.Sites.DBPort = db.Port()
	cfg.Sites.Nginx = NginxConfig{Listen: nginxAddr, ProbeListen: freeAddr(t), User: "root"}
	cfg.Sites.Offsite = OffsiteConfig{Endpoint: strings.TrimPrefix(s3.URL, "http://"), Bucket: "backups",
		AccessKeyFile: filepath.Join(keys, "access"), SecretKeyFile: filepath.Join(keys, "secret"), Insecure: true}
	cfg.API.JobTimeout = 5 * time.Minute
	return siteEnv{cfg: cfg, cli: cli, image: image, s3URL: s3.URL, nginxAddr: nginxAddr, db: db}
}

// removeBench removes a bench's container when the test ends.
func (e siteEnv) removeBench(t *testing.T, bench string) {
	t.Cleanup(func() {
		e.cli.ContainerRemove(context.Background(), benches.ContainerName(bench), client.ContainerRemoveOptions{Force: true})
	})
}

func TestLifecycle_BenchAndSite_FromNewToArchived(t *testing.T) {
	env := newSiteEnv(t)
	ctx := context.Background()
	cfg, cli, image, nginxAddr, root := env.cfg, env.cli, env.image, env.nginxAddr, env.cfg.Root
	s3 := struct{ URL string }{env.s3URL}

	bench := fmt.Sprintf("lc%d", time.Now().UnixNano()%1e9)
	env.removeBench(t, bench)

	logs := &syncBuffer{}
	a, err := New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	require.NoError(t, err)
	metricsL, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	apiL, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(runCtx, metricsL, apiL) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	})
	token, err := os.ReadFile(filepath.Join(root, "agent", "api-token"))
	require.NoError(t, err)
	api := apiClient{t: t, base: "http://" + apiL.Addr().String(), token: strings.TrimSpace(string(token))}

	// A bench: its folders owned 1000:1000, its container labelled.
	api.run("/benches", agentapi.NewBench{Name: bench, Image: image, Limits: agentapi.Limits{MemoryBytes: 256 << 20}})
	st, err := os.Stat(filepath.Join(root, "benches", bench, "sites"))
	require.NoError(t, err)
	require.EqualValues(t, 1000, st.Sys().(*syscall.Stat_t).Uid)
	inspect, err := cli.ContainerInspect(ctx, benches.ContainerName(bench), client.ContainerInspectOptions{})
	require.NoError(t, err)
	require.Equal(t, bench, inspect.Container.Config.Labels["io.hybrid.bench"])
	require.EqualValues(t, 256<<20, inspect.Container.HostConfig.Memory)

	// A site, answering through nginx by its Host header.
	site := "site1.example.com"
	api.run("/benches/"+bench+"/sites", agentapi.NewSite{Name: site})
	code, body := siteGet(t, nginxAddr, site, http.MethodGet, "/api/method/ping", "")
	require.Equal(t, http.StatusOK, code, body)
	require.JSONEq(t, `{"message":"pong"}`, body)

	records := map[string]string{"alpha": "one", "beta": "two", "gamma": "three"}
	for k, v := range records {
		code, body := siteGet(t, nginxAddr, site, http.MethodPut, "/api/resource/KV/"+k, v)
		require.Equal(t, http.StatusOK, code, body)
	}

	// A backup, offsite too, with its checksums recorded.
	job := api.run("/benches/"+bench+"/sites/"+site+"/backup", agentapi.Backup{WithFiles: true, Offsite: true})
	var result struct {
		Site          string `json:"site"`
		Size          int64  `json:"size_bytes"`
		OffsitePrefix string `json:"offsite_prefix"`
		Files         []struct {
			Name   string `json:"name"`
			SHA256 string `json:"sha256"`
		} `json:"files"`
	}
	require.NoError(t, json.Unmarshal(job.Result, &result))
	require.Equal(t, site, result.Site)
	require.Positive(t, result.Size)
	require.True(t, strings.HasPrefix(result.OffsitePrefix, site+"/"), result.OffsitePrefix)
	require.NotEmpty(t, result.Files)
	mc, err := minio.New(strings.TrimPrefix(s3.URL, "http://"), &minio.Options{Creds: credentials.NewStaticV4("AKIDTEST", "secret-key-test", "")})
	require.NoError(t, err)
	for _, f := range result.Files {
		info, err := mc.StatObject(ctx, "backups", result.OffsitePrefix+"/"+f.Name, minio.StatObjectOptions{})
		require.NoError(t, err, f.Name)
		var sum string
		for k, v := range info.UserMetadata {
			if strings.EqualFold(k, "sha256") {
				sum = v
			}
		}
		require.Equal(t, f.SHA256, sum, "offsite %s carries the recorded checksum", f.Name)
	}

	// Records deleted, then the offsite backup restored: they are back.
	for k := range records {
		code, _ := siteGet(t, nginxAddr, site, http.MethodDelete, "/api/resource/KV/"+k, "")
		require.Equal(t, http.StatusOK, code)
	}
	code, _ = siteGet(t, nginxAddr, site, http.MethodGet, "/api/resource/KV/alpha", "")
	require.Equal(t, http.StatusNotFound, code)
	api.run("/benches/"+bench+"/sites/"+site+"/restore", agentapi.Restore{Object: result.OffsitePrefix})
	for k, v := range records {
		code, body := siteGet(t, nginxAddr, site, http.MethodGet, "/api/resource/KV/"+k, "")
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, v)
	}

	// An update: migrate, and the data is still there.
	api.run("/benches/"+bench+"/sites/"+site+"/migrate", nil)
	code, body = siteGet(t, nginxAddr, site, http.MethodGet, "/api/resource/KV/beta", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "two")

	// A migrate that fails: the pre-migrate backup is restored, the job says
	// so, and the site serves its data again.
	failFlag := filepath.Join(root, "benches", bench, "sites", site, "fail_migrate")
	require.NoError(t, os.WriteFile(failFlag, nil, 0o644))
	failed := api.runFailing("/benches/"+bench+"/sites/"+site+"/migrate", nil)
	require.Contains(t, failed.Error, "pre-migrate backup")
	require.Contains(t, failed.Error, "restored")
	require.NoError(t, os.Remove(failFlag))
	code, body = siteGet(t, nginxAddr, site, http.MethodGet, "/api/resource/KV/gamma", "")
	require.Equal(t, http.StatusOK, code, "the site is back in service after the failed migrate: %s", body)
	require.Contains(t, body, "three")

	// A local backup, records changed, the local backup restored.
	local := api.run("/benches/"+bench+"/sites/"+site+"/backup", agentapi.Backup{})
	var localResult struct {
		Dir string `json:"dir"`
	}
	require.NoError(t, json.Unmarshal(local.Result, &localResult))
	code, _ = siteGet(t, nginxAddr, site, http.MethodDelete, "/api/resource/KV/gamma", "")
	require.Equal(t, http.StatusOK, code)
	api.run("/benches/"+bench+"/sites/"+site+"/restore", agentapi.Restore{Path: filepath.Base(localResult.Dir)})
	code, body = siteGet(t, nginxAddr, site, http.MethodGet, "/api/resource/KV/gamma", "")
	require.Equal(t, http.StatusOK, code, body)

	// Maintenance mode: 503 through nginx, then back.
	api.run("/benches/"+bench+"/sites/"+site+"/maintenance", agentapi.Maintenance{On: true})
	code, _ = siteGet(t, nginxAddr, site, http.MethodGet, "/api/method/ping", "")
	require.Equal(t, http.StatusServiceUnavailable, code)
	api.run("/benches/"+bench+"/sites/"+site+"/maintenance", agentapi.Maintenance{On: false})
	code, _ = siteGet(t, nginxAddr, site, http.MethodGet, "/api/method/ping", "")
	require.Equal(t, http.StatusOK, code)

	// New limits on the running bench, and a restart: it serves again.
	api.run("/benches/"+bench+"/limits", agentapi.Limits{MemoryBytes: 128 << 20, CPUs: 1})
	inspect, err = cli.ContainerInspect(ctx, benches.ContainerName(bench), client.ContainerInspectOptions{})
	require.NoError(t, err)
	require.EqualValues(t, 128<<20, inspect.Container.HostConfig.Memory)
	require.EqualValues(t, 1e9, inspect.Container.HostConfig.NanoCPUs)
	api.run("/benches/"+bench+"/restart", nil)
	require.Eventually(t, func() bool {
		code, _ := siteGet(t, nginxAddr, site, http.MethodGet, "/api/method/ping", "")
		return code == http.StatusOK
	}, 30*time.Second, 200*time.Millisecond, "the site answers after the bench restarted")

	// A bench with sites is not archived.
	refused := api.runFailing("/benches/"+bench+"/archive", nil)
	require.Contains(t, refused.Error, "still has sites")
	require.DirExists(t, filepath.Join(root, "benches", bench))

	// The job metrics saw the backup.
	password, err := os.ReadFile(webauth.PasswordFile(cfg.WebConfigFile()))
	require.NoError(t, err)
	req, _ := http.NewRequest(http.MethodGet, "http://"+metricsL.Addr().String()+"/metrics", nil)
	req.SetBasicAuth(webauth.User, strings.TrimSpace(string(password)))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(metrics), `hybrid_site_last_backup_timestamp_seconds{site="`+site+`"}`)
	require.Contains(t, string(metrics), `hybrid_agent_jobs_total{status="Success",type="site.backup"}`)

	// Archive the site, then the bench: its folder moves under archived/.
	api.run("/benches/"+bench+"/sites/"+site+"/archive", agentapi.Archive{})
	code, _ = siteGet(t, nginxAddr, site, http.MethodGet, "/api/method/ping", "")
	require.NotEqual(t, http.StatusOK, code, "an archived site is no longer served")
	api.run("/benches/"+bench+"/archive", nil)
	require.NoDirExists(t, filepath.Join(root, "benches", bench))
	matches, err := filepath.Glob(filepath.Join(root, "archived", bench+"-*"))
	require.NoError(t, err)
	require.Len(t, matches, 1)
	require.DirExists(t, filepath.Join(matches[0], "sites"))
}
