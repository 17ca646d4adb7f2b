package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/backup"
)

const helperConfigEnv = "HYBRID_AGENT_HELPER_CONFIG"

// TestHelperAgent is the agent as a separate process, for the crash test: it
// runs until killed, on the configuration the parent test passes in JSON.
func TestHelperAgent(t *testing.T) {
	raw := os.Getenv(helperConfigEnv)
	if raw == "" {
		t.Skip("the crash test's agent process")
	}
	var cfg Config
	require.NoError(t, json.Unmarshal([]byte(raw), &cfg))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	require.NoError(t, Run(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, nil))))
}

// startAgentProcess runs the agent as a child process and waits for its API.
func startAgentProcess(t *testing.T, cfg Config, log *os.File) *exec.Cmd {
	t.Helper()
	raw, err := json.Marshal(cfg)
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAgent$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperConfigEnv+"="+string(raw))
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", cfg.API.ListenAddress, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 20*time.Second, 20*time.Millisecond, "the agent's API comes up")
	return cmd
}

func TestCrash_AgentKilledMidBackup_20Times_EveryJobEndsOnce_NoPartialBackupReported(t *testing.T) {
	env := newSiteEnv(t)
	cfg := env.cfg
	cfg.Bench.Enabled = false
	cfg.Web.ListenAddress = freeAddr(t)
	cfg.API.ListenAddress = freeAddr(t)
	cfg.API.Workers = 2
	bench := fmt.Sprintf("cr%d", time.Now().UnixNano()%1e9)
	env.removeBench(t, bench)
	site := "crash.example.com"

	log, err := os.Create(filepath.Join(t.TempDir(), "agent.log"))
	require.NoError(t, err)
	defer func() {
		if t.Failed() {
			data, _ := os.ReadFile(log.Name())
			t.Logf("agent log (tail):\n%s", tailString(string(data), 8000))
		}
	}()
	agentProc := startAgentProcess(t, cfg, log)
	t.Cleanup(func() {
		// A graceful stop, so the agent stops its nginx too; then, whatever
		// happened, no nginx of this test outlives it.
		agentProc.Process.Signal(syscall.SIGTERM)
		exited := make(chan struct{})
		go func() { agentProc.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			agentProc.Process.Kill()
			<-exited
		}
		if pid, err := os.ReadFile(filepath.Join(cfg.Root, "agent", "nginx", "run", "nginx.pid")); err == nil {
			if n, err := strconv.Atoi(strings.TrimSpace(string(pid))); err == nil {
				syscall.Kill(n, syscall.SIGKILL)
			}
		}
	})
	token, err := os.ReadFile(filepath.Join(cfg.Root, "agent", "api-token"))
	require.NoError(t, err)
	api := apiClient{t: t, base: "http://" + cfg.API.ListenAddress, token: strings.TrimSpace(string(token))}
	api.run("/benches", agentapi.NewBench{Name: bench, Image: env.image})
	api.run("/benches/"+bench+"/sites", agentapi.NewSite{Name: site})

	// Backups submitted and the agent killed at random moments, 20 times.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var ids []string
	for i := range 20 {
		for j := range 2 {
			id := fmt.Sprintf("backup-%d-%d", i, j)
			code, body := api.do(http.MethodPost, "/benches/"+bench+"/sites/"+site+"/backup",
				agentapi.Backup{WithFiles: j == 0, Offsite: j == 1}, id)
			require.Equal(t, http.StatusAccepted, code, body)
			ids = append(ids, id)
		}
		time.Sleep(time.Duration(rng.IntN(600)) * time.Millisecond)
		require.NoError(t, agentProc.Process.Signal(syscall.SIGKILL))
		agentProc.Wait()
		agentProc = startAgentProcess(t, cfg, log)
		// The same id delivered again is the same job, before and after a kill.
		code, body := api.do(http.MethodPost, "/benches/"+bench+"/sites/"+site+"/backup",
			agentapi.Backup{WithFiles: true}, fmt.Sprintf("backup-%d-0", i))
		require.Equal(t, http.StatusOK, code, "a job delivered twice is one job: %s", body)
	}

	// Left alone, every job ends, Success or Failure, never stays Running.
	var jobs []agentapi.Job
	require.Eventually(t, func() bool {
		code, body := api.do(http.MethodGet, "/jobs/"+strings.Join(ids, ","), nil, "")
		require.Equal(t, http.StatusOK, code, string(body))
		require.NoError(t, json.Unmarshal(body, &jobs))
		for _, j := range jobs {
			if !j.Status.Ended() {
				return false
			}
		}
		return true
	}, 3*time.Minute, 250*time.Millisecond, "every job ends")

	success, resumed := 0, 0
	for _, j := range jobs {
		if j.Attempts > 1 {
			resumed++
		}
		running := 0
		for _, s := range j.Steps {
			if s.Status == agentapi.Running {
				running++
			}
		}
		require.Zero(t, running, "job %s ended with a step still Running", j.ID)
		if j.Status != agentapi.Success {
			continue
		}
		success++
		var res struct {
			Dir string `json:"dir"`
		}
		require.NoError(t, json.Unmarshal(j.Result, &res))
		// A backup reported successful is complete: every file there, every
		// checksum right.
		m, err := backup.Verify(context.Background(), res.Dir)
		require.NoError(t, err, "job %s reported backup %s", j.ID, res.Dir)
		require.Equal(t, site, m.Site)
	}
	t.Logf("%d backup jobs: %d Success, %d resumed after a kill", len(jobs), success, resumed)
	require.Positive(t, success)

	// No sealed backup exists that no job reported: a partial one never
	// counts as a backup.
	sealed, err := backup.List(filepath.Join(cfg.Root, "benches", bench, "sites", site, "private", "backups"))
	require.NoError(t, err)
	reported := map[string]bool{}
	for _, j := range jobs {
		var res struct {
			Dir string `json:"dir"`
		}
		if j.Status == agentapi.Success && json.Unmarshal(j.Result, &res) == nil {
			reported[res.Dir] = true
		}
	}
	for _, m := range sealed {
		require.True(t, reported[m.Dir], "sealed backup %s was not reported by any successful job", m.Dir)
	}
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
