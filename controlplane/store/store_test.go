package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/controlplane/store"
	"github.com/hybridsuite/hybrid/test/pgtest"
)

var shared pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Close()
	os.Exit(code)
}

func TestStore_SQLite(t *testing.T) {
	suite(t, func(t testing.TB) string {
		return "sqlite://" + filepath.Join(t.TempDir(), "hybrid.db")
	})
}

func TestStore_Postgres(t *testing.T) {
	srv := shared.Server(t)
	suite(t, srv.Database)
}

// TestOpen_BarePath_IsSQLite: a file path without a scheme is SQLite, made
// when missing.
func TestOpen_BarePath_IsSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(context.Background(), path, store.Options{})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.FileExists(t, path)
}

func TestOpen_UnknownScheme_Invalid(t *testing.T) {
	_, err := store.Open(context.Background(), "mysql://root:hunter2@localhost/x", store.Options{})
	require.ErrorIs(t, err, store.ErrInvalid)
	require.NotContains(t, err.Error(), "hunter2", "a DSN's password in an error")
}

// TestOpen_Postgres_ConcurrentOpens_MigrateOnce: control planes starting
// together on one Postgres take turns migrating.
func TestOpen_Postgres_ConcurrentOpens_MigrateOnce(t *testing.T) {
	dsn := shared.Server(t).Database(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := store.Open(ctx, dsn, store.Options{})
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
}

// clock is a test clock the store reads through Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type env struct {
	s     *store.Store
	clock *clock
	dsn   string
}

func (e *env) open(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), e.dsn, store.Options{Now: e.clock.Now})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// suite runs every case against a store on the DSN newDSN makes: a fresh,
// empty database each time.
func suite(t *testing.T, newDSN func(testing.TB) string) {
	cases := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"Servers_CreateGetList", testServersCreateGetList},
		{"Servers_DuplicateName_Conflict", testServersDuplicateName},
		{"Servers_BadInput_InvalidNothingWritten", testServersBadInput},
		{"ServerStatus_WithStep_RecordedTogether", testServerStatusWithStep},
		{"ServerStatus_StepFailsMidway_NeitherWritten", testServerStatusStepFailsMidway},
		{"ServerStatus_ProvisionAgain_NewRun", testServerStatusNewRun},
		{"Tx_FunctionFails_RollsBackEverything", testTxRollsBack},
		{"PinHostKey_ChangedKey_ConflictKeepsPinned", testPinHostKey},
		{"SetServerSpecs_RoundTrip", testSetServerSpecs},
		{"Benches_CRUD_AndUniquePerServer", testBenches},
		{"Sites_CRUD_AndUniquePerServer", testSites},
		{"Sites_ListPaginated", testSitesPagination},
		{"Jobs_CreateIdempotentOnID", testJobsCreateIdempotent},
		{"Jobs_ConcurrentCreateSameID_OneRow", testJobsConcurrentCreate},
		{"Jobs_DeliveryLifecycle", testJobsDelivery},
		{"Jobs_ConcurrentClaims_NoJobTwice", testJobsConcurrentClaims},
		{"Jobs_FromAgent_EndedStaysEnded", testJobsFromAgent},
		{"Jobs_Deadline_FailsOverdue", testJobsDeadline},
		{"Jobs_ListPaginatedNewestFirst", testJobsPagination},
		{"APITokens_StoredHashed", testAPITokens},
		{"Open_Twice_MigrationsIdempotent", testOpenTwice},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := &env{clock: &clock{t: epoch}, dsn: newDSN(t)}
			e.s = e.open(t)
			c.fn(t, e)
		})
	}
}

var ctx = context.Background()

func addServer(t *testing.T, s *store.Store, name string) store.Server {
	t.Helper()
	sv, err := s.CreateServer(ctx, store.Server{
		Name: name, Address: name + ".example.com", Port: 22, SSHUser: "root",
		SSHKeyPath: "/var/lib/hybrid/keys/" + name, AgentTokenPath: "/var/lib/hybrid/secrets/" + name + ".token",
		MetricsPasswordPath: "/var/lib/hybrid/secrets/" + name + ".metrics",
	})
	require.NoError(t, err)
	return sv
}

func testServersCreateGetList(t *testing.T, e *env) {
	created := addServer(t, e.s, "b-server")
	require.NotEmpty(t, created.ID)
	require.Equal(t, store.ServerPending, created.Status)
	require.Equal(t, epoch, created.CreatedAt)
	require.Equal(t, epoch, created.UpdatedAt)
	addServer(t, e.s, "a-server")

	got, err := e.s.GetServer(ctx, "b-server")
	require.NoError(t, err)
	require.Equal(t, created, got)
	require.Equal(t, "b-server.example.com", got.Address)
	require.Equal(t, 22, got.Port)
	require.Equal(t, "root", got.SSHUser)
	require.Equal(t, "/var/lib/hybrid/keys/b-server", got.SSHKeyPath)
	require.Equal(t, "/var/lib/hybrid/secrets/b-server.token", got.AgentTokenPath)
	require.Equal(t, "/var/lib/hybrid/secrets/b-server.metrics", got.MetricsPasswordPath)

	list, err := e.s.ListServers(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, "a-server", list[0].Name)
	require.Equal(t, "b-server", list[1].Name)

	_, err = e.s.GetServer(ctx, "nope")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testServersDuplicateName(t *testing.T, e *env) {
	addServer(t, e.s, "one")
	_, err := e.s.CreateServer(ctx, store.Server{Name: "one", Address: "other", Port: 2222, SSHUser: "root"})
	require.ErrorIs(t, err, store.ErrConflict)
	got, err := e.s.GetServer(ctx, "one")
	require.NoError(t, err)
	require.Equal(t, "one.example.com", got.Address, "the first server was changed")
}

func testServersBadInput(t *testing.T, e *env) {
	for _, sv := range []store.Server{
		{Name: "", Address: "h", Port: 22, SSHUser: "root"},
		{Name: "x", Address: "", Port: 22, SSHUser: "root"},
		{Name: "x", Address: "h", Port: 70000, SSHUser: "root"},
		{Name: "x", Address: "h", Port: 22, SSHUser: ""},
		{Name: "x", Address: "h", Port: 22, SSHUser: "root", Status: "Exploded"},
	} {
		_, err := e.s.CreateServer(ctx, sv)
		require.ErrorIs(t, err, store.ErrInvalid, "%+v", sv)
	}
	list, err := e.s.ListServers(ctx)
	require.NoError(t, err)
	require.Empty(t, list)
}

func exit(code int) *int { return &code }

func testServerStatusWithStep(t *testing.T, e *env) {
	addServer(t, e.s, "srv")
	sv, err := e.s.UpdateServerStatus(ctx, "srv", store.ServerProvisioning, "", nil)
	require.NoError(t, err)
	require.Equal(t, store.ServerProvisioning, sv.Status)
	require.Equal(t, 1, sv.ProvisionRun)

	require.NoError(t, e.s.RecordStep(ctx, "srv", store.Step{
		Position: 0, Name: "frappe user", Status: store.StepSuccess, Command: "useradd frappe",
		ExitStatus: exit(0), Duration: 1500 * time.Millisecond, Changed: true,
		StartedAt: epoch, EndedAt: epoch.Add(1500 * time.Millisecond),
	}))
	require.NoError(t, e.s.RecordStep(ctx, "srv", store.Step{Position: 1, Name: "docker", Status: store.StepRunning, StartedAt: epoch}))
	e.clock.Advance(time.Minute)

	failed := store.Step{
		Position: 1, Name: "docker", Status: store.StepFailure, Command: "apt-get install -y docker.io",
		OutputTail: "E: Unable to locate package docker.io", ExitStatus: exit(100),
		Duration: 3 * time.Second, StartedAt: epoch, EndedAt: epoch.Add(3 * time.Second),
	}
	sv, err = e.s.UpdateServerStatus(ctx, "srv", store.ServerBroken, "step docker: exit status 100", &failed)
	require.NoError(t, err)
	require.Equal(t, store.ServerBroken, sv.Status)
	require.Equal(t, "step docker: exit status 100", sv.StatusReason)
	require.Equal(t, epoch.Add(time.Minute), sv.UpdatedAt)
	require.Equal(t, 1, sv.ProvisionRun, "a Broken server keeps its run")

	steps, err := e.s.ListSteps(ctx, "srv", 0)
	require.NoError(t, err)
	require.Len(t, steps, 2)
	require.Equal(t, store.Step{
		Run: 1, Position: 0, Name: "frappe user", Status: store.StepSuccess, Command: "useradd frappe",
		ExitStatus: exit(0), Duration: 1500 * time.Millisecond, Changed: true,
		StartedAt: epoch, EndedAt: epoch.Add(1500 * time.Millisecond),
	}, steps[0])
	failed.Run = 1
	require.Equal(t, failed, steps[1], "the Running step was replaced by its end")

	_, err = e.s.ListSteps(ctx, "nope", 0)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, e.s.RecordStep(ctx, "nope", store.Step{Name: "x", Status: store.StepRunning}), store.ErrNotFound)
	require.ErrorIs(t, e.s.RecordStep(ctx, "srv", store.Step{Name: "x", Status: "Done"}), store.ErrInvalid)
	_, err = e.s.UpdateServerStatus(ctx, "srv", "Gone", "", nil)
	require.ErrorIs(t, err, store.ErrInvalid)
}

// The step is written after the status in the same transaction: when the
// step's insert fails (its position is another step's), the status change
// is undone too.
func testServerStatusStepFailsMidway(t *testing.T, e *env) {
	addServer(t, e.s, "srv")
	_, err := e.s.UpdateServerStatus(ctx, "srv", store.ServerProvisioning, "", nil)
	require.NoError(t, err)
	require.NoError(t, e.s.RecordStep(ctx, "srv", store.Step{Position: 0, Name: "first", Status: store.StepSuccess}))

	e.clock.Advance(time.Minute)
	_, err = e.s.UpdateServerStatus(ctx, "srv", store.ServerBroken, "step clash failed",
		&store.Step{Position: 0, Name: "clash", Status: store.StepFailure})
	require.ErrorIs(t, err, store.ErrConflict)

	sv, err := e.s.GetServer(ctx, "srv")
	require.NoError(t, err)
	require.Equal(t, store.ServerProvisioning, sv.Status, "status written without its step")
	require.Empty(t, sv.StatusReason)
	require.Equal(t, epoch, sv.UpdatedAt)
	steps, err := e.s.ListSteps(ctx, "srv", 0)
	require.NoError(t, err)
	require.Len(t, steps, 1)
	require.Equal(t, "first", steps[0].Name)
}

func testServerStatusNewRun(t *testing.T, e *env) {
	addServer(t, e.s, "srv")
	_, err := e.s.UpdateServerStatus(ctx, "srv", store.ServerProvisioning, "", nil)
	require.NoError(t, err)
	require.NoError(t, e.s.RecordStep(ctx, "srv", store.Step{Position: 0, Name: "a", Status: store.StepSuccess, Changed: true}))
	_, err = e.s.UpdateServerStatus(ctx, "srv", store.ServerActive, "", nil)
	require.NoError(t, err)

	sv, err := e.s.UpdateServerStatus(ctx, "srv", store.ServerProvisioning, "", nil)
	require.NoError(t, err)
	require.Equal(t, 2, sv.ProvisionRun)
	// Provisioning while Provisioning stays in the run.
	sv, err = e.s.UpdateServerStatus(ctx, "srv", store.ServerProvisioning, "", nil)
	require.NoError(t, err)
	require.Equal(t, 2, sv.ProvisionRun)
	require.NoError(t, e.s.RecordStep(ctx, "srv", store.Step{Position: 0, Name: "a", Status: store.StepSuccess, Changed: false}))

	latest, err := e.s.ListSteps(ctx, "srv", 0)
	require.NoError(t, err)
	require.Len(t, latest, 1)
	require.Equal(t, 2, latest[0].Run)
	require.False(t, latest[0].Changed)
	first, err := e.s.ListSteps(ctx, "srv", 1)
	require.NoError(t, err)
	require.Len(t, first, 1)
	require.True(t, first[0].Changed)
}

func testTxRollsBack(t *testing.T, e *env) {
	addServer(t, e.s, "srv")
	boom := errors.New("boom")
	err := e.s.Tx(ctx, func(tx *store.Store) error {
		if _, err := tx.UpdateServerStatus(ctx, "srv", store.ServerProvisioning, "", nil); err != nil {
			return err
		}
		if err := tx.RecordStep(ctx, "srv", store.Step{Name: "a", Status: store.StepRunning}); err != nil {
			return err
		}
		if _, err := tx.CreateBench(ctx, store.Bench{Server: "srv", Name: "b1", Image: "frappe:v1"}); err != nil {
			return err
		}
		// Reads inside see the writes.
		sv, err := tx.GetServer(ctx, "srv")
		if err != nil {
			return err
		}
		if sv.Status != store.ServerProvisioning {
			return fmt.Errorf("status inside the tx: %s", sv.Status)
		}
		return boom
	})
	require.ErrorIs(t, err, boom)

	sv, err := e.s.GetServer(ctx, "srv")
	require.NoError(t, err)
	require.Equal(t, store.ServerPending, sv.Status)
	require.Equal(t, 0, sv.ProvisionRun)
	steps, err := e.s.ListSteps(ctx, "srv", 1)
	require.NoError(t, err)
	require.Empty(t, steps)
	_, err = e.s.GetBench(ctx, "srv", "b1")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testPinHostKey(t *testing.T, e *env) {
	addServer(t, e.s, "srv")
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOm first"
	require.NoError(t, e.s.PinHostKey(ctx, "srv", key))
	require.NoError(t, e.s.PinHostKey(ctx, "srv", key), "the same key again")
	err := e.s.PinHostKey(ctx, "srv", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOm other")
	require.ErrorIs(t, err, store.ErrConflict)
	sv, err := e.s.GetServer(ctx, "srv")
	require.NoError(t, err)
	require.Equal(t, key, sv.HostKey)
	require.ErrorIs(t, e.s.PinHostKey(ctx, "nope", key), store.ErrNotFound)
	require.ErrorIs(t, e.s.PinHostKey(ctx, "srv", ""), store.ErrInvalid)
}

func testSetServerSpecs(t *testing.T, e *env) {
	addServer(t, e.s, "srv")
	specs := store.Specs{OS: "debian 12", CPUs: 4, MemoryBytes: 8 << 30, DiskBytes: 80 << 30}
	require.NoError(t, e.s.SetServerSpecs(ctx, "srv", specs))
	sv, err := e.s.GetServer(ctx, "srv")
	require.NoError(t, err)
	require.Equal(t, specs, sv.Specs)
	require.ErrorIs(t, e.s.SetServerSpecs(ctx, "nope", specs), store.ErrNotFound)
}

func testBenches(t *testing.T, e *env) {
	addServer(t, e.s, "s1")
	addServer(t, e.s, "s2")
	b, err := e.s.CreateBench(ctx, store.Bench{Server: "s1", Name: "bench-1", Image: "frappe/erpnext:v15"})
	require.NoError(t, err)
	require.Equal(t, store.Bench{ID: b.ID, Server: "s1", Name: "bench-1", Image: "frappe/erpnext:v15",
		Status: store.BenchPending, CreatedAt: epoch, UpdatedAt: epoch}, b)

	_, err = e.s.CreateBench(ctx, store.Bench{Server: "s1", Name: "bench-1", Image: "other:v1"})
	require.ErrorIs(t, err, store.ErrConflict)
	_, err = e.s.CreateBench(ctx, store.Bench{Server: "s2", Name: "bench-1", Image: "frappe/erpnext:v15"})
	require.NoError(t, err, "the same bench name on another server")
	_, err = e.s.CreateBench(ctx, store.Bench{Server: "s1", Name: "bench-0", Image: "frappe/erpnext:v14"})
	require.NoError(t, err)
	_, err = e.s.CreateBench(ctx, store.Bench{Server: "nope", Name: "bench-1", Image: "frappe/erpnext:v15"})
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = e.s.CreateBench(ctx, store.Bench{Server: "s1", Name: "../x", Image: "frappe/erpnext:v15"})
	require.ErrorIs(t, err, store.ErrInvalid)

	list, err := e.s.ListBenches(ctx, "s1")
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, "bench-0", list[0].Name)
	require.Equal(t, "bench-1", list[1].Name)
	all, err := e.s.ListBenches(ctx, "")
	require.NoError(t, err)
	require.Len(t, all, 3)

	e.clock.Advance(time.Second)
	require.NoError(t, e.s.UpdateBenchStatus(ctx, "s1", "bench-1", store.BenchActive))
	got, err := e.s.GetBench(ctx, "s1", "bench-1")
	require.NoError(t, err)
	require.Equal(t, store.BenchActive, got.Status)
	require.Equal(t, epoch.Add(time.Second), got.UpdatedAt)
	other, err := e.s.GetBench(ctx, "s2", "bench-1")
	require.NoError(t, err)
	require.Equal(t, store.BenchPending, other.Status, "another server's bench of that name changed")
	require.ErrorIs(t, e.s.UpdateBenchStatus(ctx, "s1", "nope", store.BenchActive), store.ErrNotFound)
	require.ErrorIs(t, e.s.UpdateBenchStatus(ctx, "s1", "bench-1", "Melted"), store.ErrInvalid)
}

func testSites(t *testing.T, e *env) {
	addServer(t, e.s, "s1")
	addServer(t, e.s, "s2")
	for _, b := range []store.Bench{
		{Server: "s1", Name: "old", Image: "frappe:v1"},
		{Server: "s1", Name: "new", Image: "frappe:v2"},
		{Server: "s2", Name: "old", Image: "frappe:v1"},
	} {
		_, err := e.s.CreateBench(ctx, b)
		require.NoError(t, err)
	}
	site, err := e.s.CreateSite(ctx, store.Site{Server: "s1", Bench: "old", Name: "shop.example.com"})
	require.NoError(t, err)
	require.Equal(t, store.Site{ID: site.ID, Server: "s1", Bench: "old", Name: "shop.example.com",
		Status: store.SitePending, CreatedAt: epoch, UpdatedAt: epoch}, site)

	_, err = e.s.CreateSite(ctx, store.Site{Server: "s1", Bench: "new", Name: "shop.example.com"})
	require.ErrorIs(t, err, store.ErrConflict, "a site name is unique on its server, across benches")
	_, err = e.s.CreateSite(ctx, store.Site{Server: "s2", Bench: "old", Name: "shop.example.com"})
	require.NoError(t, err, "the same site name on another server")
	_, err = e.s.CreateSite(ctx, store.Site{Server: "s1", Bench: "nope", Name: "x.example.com"})
	require.ErrorIs(t, err, store.ErrNotFound)
	for _, bad := range []string{"../x", "a;b", string(make([]byte, 300))} {
		_, err = e.s.CreateSite(ctx, store.Site{Server: "s1", Bench: "old", Name: bad})
		require.ErrorIs(t, err, store.ErrInvalid, "%q", bad)
	}

	e.clock.Advance(time.Hour)
	require.NoError(t, e.s.UpdateSiteStatus(ctx, "s1", "shop.example.com", store.SiteActive))
	require.NoError(t, e.s.RecordSiteBackup(ctx, "s1", "shop.example.com", "job-backup-1", epoch.Add(time.Minute)))
	require.NoError(t, e.s.RecordSiteRestore(ctx, "s1", "shop.example.com", "job-backup-0", epoch.Add(2*time.Minute)))
	require.NoError(t, e.s.MoveSite(ctx, "s1", "shop.example.com", "new"))
	got, err := e.s.GetSite(ctx, "s1", "shop.example.com")
	require.NoError(t, err)
	require.Equal(t, store.Site{ID: site.ID, Server: "s1", Bench: "new", Name: "shop.example.com",
		Status: store.SiteActive, LastBackup: "job-backup-1", LastBackupAt: epoch.Add(time.Minute),
		LastRestore: "job-backup-0", LastRestoreAt: epoch.Add(2 * time.Minute),
		CreatedAt: epoch, UpdatedAt: epoch.Add(time.Hour)}, got)

	other, err := e.s.GetSite(ctx, "s2", "shop.example.com")
	require.NoError(t, err)
	require.Equal(t, store.SitePending, other.Status, "another server's site of that name changed")
	require.Empty(t, other.LastBackup)

	require.ErrorIs(t, e.s.MoveSite(ctx, "s1", "shop.example.com", "nope"), store.ErrNotFound)
	require.ErrorIs(t, e.s.UpdateSiteStatus(ctx, "s1", "nope.example.com", store.SiteActive), store.ErrNotFound)
	require.ErrorIs(t, e.s.UpdateSiteStatus(ctx, "s1", "shop.example.com", "Exploded"), store.ErrInvalid)
	_, err = e.s.GetSite(ctx, "s1", "nope.example.com")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testSitesPagination(t *testing.T, e *env) {
	addServer(t, e.s, "s1")
	addServer(t, e.s, "s2")
	for _, srv := range []string{"s1", "s2"} {
		_, err := e.s.CreateBench(ctx, store.Bench{Server: srv, Name: "b", Image: "frappe:v1"})
		require.NoError(t, err)
	}
	_, err := e.s.CreateBench(ctx, store.Bench{Server: "s1", Name: "c", Image: "frappe:v1"})
	require.NoError(t, err)
	want := map[string]bool{}
	for i := range 7 {
		name := fmt.Sprintf("site%d.example.com", i)
		_, err := e.s.CreateSite(ctx, store.Site{Server: "s1", Bench: "b", Name: name})
		require.NoError(t, err)
		want["s1/"+name] = true
	}
	// Same names on s2: the cursor must tell them apart.
	for i := range 3 {
		name := fmt.Sprintf("site%d.example.com", i)
		_, err := e.s.CreateSite(ctx, store.Site{Server: "s2", Bench: "b", Name: name})
		require.NoError(t, err)
		want["s2/"+name] = true
	}
	_, err = e.s.CreateSite(ctx, store.Site{Server: "s1", Bench: "c", Name: "zz.example.com"})
	require.NoError(t, err)
	want["s1/zz.example.com"] = true

	seen := map[string]bool{}
	var pages []int
	cursor := ""
	lastName := ""
	for {
		page, next, err := e.s.ListSites(ctx, store.SiteFilter{Limit: 4, After: cursor})
		require.NoError(t, err)
		pages = append(pages, len(page))
		for _, st := range page {
			key := st.Server + "/" + st.Name
			require.False(t, seen[key], "%s on two pages", key)
			seen[key] = true
			require.GreaterOrEqual(t, st.Name, lastName, "not ordered by name")
			lastName = st.Name
		}
		if next == "" {
			break
		}
		cursor = next
	}
	require.Equal(t, want, seen)
	require.Equal(t, []int{4, 4, 3}, pages)

	s1, next, err := e.s.ListSites(ctx, store.SiteFilter{Server: "s1"})
	require.NoError(t, err)
	require.Len(t, s1, 8)
	require.Empty(t, next)
	onC, _, err := e.s.ListSites(ctx, store.SiteFilter{Server: "s1", Bench: "c"})
	require.NoError(t, err)
	require.Len(t, onC, 1)
	require.Equal(t, "zz.example.com", onC[0].Name)

	_, _, err = e.s.ListSites(ctx, store.SiteFilter{After: "not a cursor!"})
	require.ErrorIs(t, err, store.ErrInvalid)
}

func newJob(id, server string) store.Job {
	return store.Job{ID: id, Server: server, Type: "New Site", Bench: "b", Site: "shop.example.com",
		Request: json.RawMessage(`{"name":"shop.example.com"}`)}
}

func testJobsCreateIdempotent(t *testing.T, e *env) {
	addServer(t, e.s, "srv")
	j, created, err := e.s.CreateJob(ctx, newJob("job-1", "srv"))
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, store.Job{ID: "job-1", Server: "srv", Type: "New Site", Bench: "b", Site: "shop.example.com",
		Request: json.RawMessage(`{"name":"shop.example.com"}`), Status: store.JobPending,
		NextAttemptAt: epoch, CreatedAt: epoch, UpdatedAt: epoch}, j)

	e.clock.Advance(time.Minute)
	again, created, err := e.s.CreateJob(ctx, newJob("job-1", "srv"))
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, j, again)

	other := newJob("job-1", "srv")
	other.Request = json.RawMessage(`{"name":"other.example.com"}`)
	_, _, err = e.s.CreateJob(ctx, other)
	require.ErrorIs(t, err, store.ErrConflict)

	_, _, err = e.s.CreateJob(ctx, newJob("../x", "srv"))
	require.ErrorIs(t, err, store.ErrInvalid)
	bad := newJob("job-2", "srv")
	bad.Request = json.RawMessage(`{not json`)
	_, _, err = e.s.CreateJob(ctx, bad)
	require.ErrorIs(t, err, store.ErrInvalid)
	_, _, err = e.s.CreateJob(ctx, newJob("job-3", "nope"))
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = e.s.GetJob(ctx, "job-2")
	require.ErrorIs(t, err, store.ErrNotFound)
}

// Several callers (two stores, as two control-plane processes would have)
// create the same job at once: one row, one "created", no error.
func testJobsConcurrentCreate(t *testing.T, e *env) {
	addServer(t, e.s, "srv")
	stores := []*store.Store{e.s, e.open(t)}
	const callers = 8
	var wg sync.WaitGroup
	createdCount := make(chan bool, callers)
	errs := make(chan error, callers)
	start := make(chan struct{})
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, created, err := stores[i%2].CreateJob(ctx, newJob("job-same", "srv"))
			errs <- err
			createdCount <- created
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	close(createdCount)
	for err := range errs {
		require.NoError(t, err)
	}
	n := 0
	for c := range createdCount {
		if c {
			n++
		}
	}
	require.Equal(t, 1, n, "callers that saw created")
	jobs, _, err := e.s.ListJobs(ctx, store.JobFilter{})
	require.NoError(t, err)
	require.Len(t, jobs, 1)
}

func testJobsDelivery(t *testing.T, e *env) {
	addServer(t, e.s, "srv")
	for i, id := range []string{"job-a", "job-b", "job-c"} {
		j := newJob(id, "srv")
		j.NextAttemptAt = epoch.Add(time.Duration(3-i) * time.Second) // c due first
		_, _, err := e.s.CreateJob(ctx, j)
		require.NoError(t, err)
	}
	later := newJob("job-later", "srv")
	later.NextAttemptAt = epoch.Add(time.Hour)
	_, _, err := e.s.CreateJob(ctx, later)
	require.NoError(t, err)

	none, err := e.s.NextJobsToDeliver(ctx, time.Minute, 10)
	require.NoError(t, err)
	require.Empty(t, none, "nothing is due yet")

	e.clock.Advance(5 * time.Second)
	claimed, err := e.s.NextJobsToDeliver(ctx, time.Minute, 2)
	require.NoError(t, err)
	require.Len(t, claimed, 2)
	ids := []string{claimed[0].ID, claimed[1].ID}
	require.ElementsMatch(t, []string{"job-c", "job-b"}, ids, "the two due first")
	for _, j := range claimed {
		require.Equal(t, store.JobDelivering, j.Status)
		require.Equal(t, 1, j.Attempts)
		require.Equal(t, epoch.Add(5*time.Second+time.Minute), j.NextAttemptAt)
	}
	rest, err := e.s.NextJobsToDeliver(ctx, time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, rest, 1, "claimed jobs are leased")
	require.Equal(t, "job-a", rest[0].ID)

	require.NoError(t, e.s.MarkDelivered(ctx, "job-c"))
	require.NoError(t, e.s.RetryDelivery(ctx, "job-b", epoch.Add(10*time.Second), "dial tcp: connection refused"))
	require.NoError(t, e.s.FailJob(ctx, "job-a", "agent said 400: bad site name"))
	require.ErrorIs(t, e.s.MarkDelivered(ctx, "nope"), store.ErrNotFound)

	c, err := e.s.GetJob(ctx, "job-c")
	require.NoError(t, err)
	require.Equal(t, store.JobDelivered, c.Status)
	b, err := e.s.GetJob(ctx, "job-b")
	require.NoError(t, err)
	require.Equal(t, store.JobPending, b.Status)
	require.Equal(t, "dial tcp: connection refused", b.Error)
	a, err := e.s.GetJob(ctx, "job-a")
	require.NoError(t, err)
	require.Equal(t, store.JobFailure, a.Status)
	require.Equal(t, "agent said 400: bad site name", a.Error)

	// A failed job is not delivered again, nor made Delivered by a late answer.
	require.NoError(t, e.s.MarkDelivered(ctx, "job-a"))
	a, err = e.s.GetJob(ctx, "job-a")
	require.NoError(t, err)
	require.Equal(t, store.JobFailure, a.Status)

	e.clock.Advance(10 * time.Second)
	retry, err := e.s.NextJobsToDeliver(ctx, time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, retry, 1)
	require.Equal(t, "job-b", retry[0].ID)
	require.Equal(t, 2, retry[0].Attempts)

	// A deliverer that died: its lease runs out and the job is due again.
	e.clock.Advance(2 * time.Minute)
	again, err := e.s.NextJobsToDeliver(ctx, time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, again, 1)
	require.Equal(t, "job-b", again[0].ID)
	require.Equal(t, 3, again[0].Attempts)

	inFlight, err := e.s.JobsInFlight(ctx, "")
	require.NoError(t, err)
	require.Len(t, inFlight, 1)
	require.Equal(t, "job-c", inFlight[0].ID)
	inFlight, err = e.s.JobsInFlight(ctx, "other")
	require.NoError(t, err)
	require.Empty(t, inFlight)
}

// Two control planes (two stores) claim due jobs at once: each job is
// claimed by one of them.
func testJobsConcurrentClaims(t *testing.T, e *env) {
	addServer(t, e.s, "srv")
	const jobs = 30
	for i := range jobs {
		_, _, err := e.s.CreateJob(ctx, newJob(fmt.Sprintf("job-%02d", i), "srv"))
		require.NoError(t, err)
	}
	stores := []*store.Store{e.s, e.open(t)}
	var mu sync.Mutex
	claimedBy := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := stores[i%2].NextJobsToDeliver(ctx, time.Minute, 7)
			errs <- err
			mu.Lock()
			defer mu.Unlock()
			for _, j := range got {
				claimedBy[j.ID]++
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for id, n := range claimedBy {
		require.Equal(t, 1, n, "%s claimed %d times", id, n)
	}
	// Six claims of up to seven: every one of the 30 was taken once.
	require.Len(t, claimedBy, jobs)
}

func testJobsFromAgent(t *testing.T, e *env) {
	addServer(t, e.s, "srv")
	_, _, err := e.s.CreateJob(ctx, newJob("job-1", "srv"))
	require.NoError(t, err)

	running := agentapi.Job{ID: "job-1", Type: "New Site", Status: agentapi.Running,
		Steps: []agentapi.Step{{Name: "new-site", Status: agentapi.Running}}}
	j, err := e.s.UpdateJobFromAgent(ctx, running)
	require.NoError(t, err)
	require.Equal(t, store.JobRunning, j.Status)
	var snap agentapi.Job
	require.NoError(t, json.Unmarshal(j.AgentJob, &snap))
	require.Equal(t, "new-site", snap.Steps[0].Name)

	failed := running
	failed.Status, failed.Error = agentapi.Failure, "step new-site: exit status 1"
	j, err = e.s.UpdateJobFromAgent(ctx, failed)
	require.NoError(t, err)
	require.Equal(t, store.JobFailure, j.Status)
	require.Equal(t, "step new-site: exit status 1", j.Error)

	// A late poll answer from before the end changes nothing.
	j, err = e.s.UpdateJobFromAgent(ctx, running)
	require.NoError(t, err)
	require.Equal(t, store.JobFailure, j.Status)
	require.Equal(t, "step new-site: exit status 1", j.Error)

	_, err = e.s.UpdateJobFromAgent(ctx, agentapi.Job{ID: "nope", Status: agentapi.Running})
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = e.s.UpdateJobFromAgent(ctx, agentapi.Job{ID: "job-1", Status: "Weird"})
	require.ErrorIs(t, err, store.ErrInvalid)
}

func testJobsDeadline(t *testing.T, e *env) {
	addServer(t, e.s, "srv")
	soon := newJob("job-soon", "srv")
	soon.Deadline = epoch.Add(time.Minute)
	_, _, err := e.s.CreateJob(ctx, soon)
	require.NoError(t, err)
	undelivered := newJob("job-undelivered", "srv")
	undelivered.Deadline = epoch.Add(time.Minute)
	undelivered.NextAttemptAt = epoch.Add(time.Hour)
	_, _, err = e.s.CreateJob(ctx, undelivered)
	require.NoError(t, err)
	far := newJob("job-far", "srv")
	far.Deadline = epoch.Add(time.Hour)
	_, _, err = e.s.CreateJob(ctx, far)
	require.NoError(t, err)
	done := newJob("job-done", "srv")
	done.Deadline = epoch.Add(time.Minute)
	_, _, err = e.s.CreateJob(ctx, done)
	require.NoError(t, err)
	_, err = e.s.UpdateJobFromAgent(ctx, agentapi.Job{ID: "job-done", Status: agentapi.Success})
	require.NoError(t, err)
	_, err = e.s.UpdateJobFromAgent(ctx, agentapi.Job{ID: "job-soon", Status: agentapi.Running})
	require.NoError(t, err)

	overdue, err := e.s.FailOverdueJobs(ctx)
	require.NoError(t, err)
	require.Empty(t, overdue)

	e.clock.Advance(2 * time.Minute)
	// Past its deadline a job is not delivered any more.
	claimed, err := e.s.NextJobsToDeliver(ctx, time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	require.Equal(t, "job-far", claimed[0].ID)

	overdue, err = e.s.FailOverdueJobs(ctx)
	require.NoError(t, err)
	require.Len(t, overdue, 2)
	require.Equal(t, "job-soon", overdue[0].ID)
	require.Equal(t, "job-undelivered", overdue[1].ID)
	got, err := e.s.GetJob(ctx, "job-soon")
	require.NoError(t, err)
	require.Equal(t, store.JobFailure, got.Status)
	require.Contains(t, got.Error, "deadline")
	require.Contains(t, got.Error, "running")
	got, err = e.s.GetJob(ctx, "job-done")
	require.NoError(t, err)
	require.Equal(t, store.JobSuccess, got.Status)
}

func testJobsPagination(t *testing.T, e *env) {
	addServer(t, e.s, "s1")
	addServer(t, e.s, "s2")
	var want []string
	for i := range 25 {
		// Pairs share a creation time: the id breaks the tie.
		if i%2 == 0 {
			e.clock.Advance(time.Millisecond)
		}
		server := "s1"
		if i%5 == 0 {
			server = "s2"
		}
		id := fmt.Sprintf("job-%02d", i)
		_, _, err := e.s.CreateJob(ctx, newJob(id, server))
		require.NoError(t, err)
		want = append([]string{id}, want...) // newest first
	}
	var got []string
	var pages []int
	cursor := ""
	for {
		page, next, err := e.s.ListJobs(ctx, store.JobFilter{Limit: 10, After: cursor})
		require.NoError(t, err)
		pages = append(pages, len(page))
		for _, j := range page {
			got = append(got, j.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	require.Equal(t, want, got)
	require.Equal(t, []int{10, 10, 5}, pages)

	s2, next, err := e.s.ListJobs(ctx, store.JobFilter{Server: "s2"})
	require.NoError(t, err)
	require.Empty(t, next)
	require.Len(t, s2, 5)
	for _, j := range s2 {
		require.Equal(t, "s2", j.Server)
	}
	require.NoError(t, e.s.FailJob(ctx, "job-03", "x"))
	failed, _, err := e.s.ListJobs(ctx, store.JobFilter{Status: store.JobFailure})
	require.NoError(t, err)
	require.Len(t, failed, 1)
	require.Equal(t, "job-03", failed[0].ID)
	_, _, err = e.s.ListJobs(ctx, store.JobFilter{Status: "Lost"})
	require.ErrorIs(t, err, store.ErrInvalid)
}

func testAPITokens(t *testing.T, e *env) {
	secret, tok, err := e.s.CreateAPIToken(ctx, "ci", store.ScopeRead)
	require.NoError(t, err)
	require.Regexp(t, `^hyb_[A-Za-z0-9_-]{43}$`, secret)
	require.Equal(t, store.ScopeRead, tok.Scope)

	got, err := e.s.APITokenBySecret(ctx, secret)
	require.NoError(t, err)
	require.Equal(t, tok, got)
	_, err = e.s.APITokenBySecret(ctx, secret+"x")
	require.ErrorIs(t, err, store.ErrNotFound)

	_, _, err = e.s.CreateAPIToken(ctx, "ci", store.ScopeAdmin)
	require.ErrorIs(t, err, store.ErrConflict)
	_, _, err = e.s.CreateAPIToken(ctx, "root", "superuser")
	require.ErrorIs(t, err, store.ErrInvalid)
	adminSecret, _, err := e.s.CreateAPIToken(ctx, "admin", store.ScopeAdmin)
	require.NoError(t, err)
	require.NotEqual(t, secret, adminSecret)

	list, err := e.s.ListAPITokens(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, "admin", list[0].Name)
	require.Equal(t, store.ScopeAdmin, list[0].Scope)

	require.NoError(t, e.s.DeleteAPIToken(ctx, "ci"))
	_, err = e.s.APITokenBySecret(ctx, secret)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, e.s.DeleteAPIToken(ctx, "ci"), store.ErrNotFound)
}

func testOpenTwice(t *testing.T, e *env) {
	v1, err := e.s.SchemaVersion(ctx)
	require.NoError(t, err)
	require.Positive(t, v1)
	addServer(t, e.s, "kept")
	require.NoError(t, e.s.Close())

	again := e.open(t)
	v2, err := again.SchemaVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, v1, v2)
	sv, err := again.GetServer(ctx, "kept")
	require.NoError(t, err)
	require.Equal(t, "kept", sv.Name)
	// And a third beside the second.
	third := e.open(t)
	_, err = third.GetServer(ctx, "kept")
	require.NoError(t, err)
}
