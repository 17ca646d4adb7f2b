package agent

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/moby/moby/client"

	"github.com/hybridsuite/hybrid/agent/api"
	"github.com/hybridsuite/hybrid/agent/backup"
	"github.com/hybridsuite/hybrid/agent/benches"
	"github.com/hybridsuite/hybrid/agent/jobs"
	"github.com/hybridsuite/hybrid/agent/nginx"
	"github.com/hybridsuite/hybrid/agent/sites"
	"github.com/hybridsuite/hybrid/exporters/bench"
	"github.com/hybridsuite/hybrid/exporters/sitelog"
	"github.com/hybridsuite/hybrid/internal/atomicfile"
	"github.com/hybridsuite/hybrid/internal/mycnf"
	"github.com/hybridsuite/hybrid/internal/webauth"
)

// operations is the job side of the agent: the queue, what its job types
// work with, and the API in front of it.
type operations struct {
	queue  *jobs.Queue
	nginx  *nginx.Manager
	docker *client.Client
	admin  *sql.DB
	server *api.Server
	logger *slog.Logger
	owned  bool // the agent runs its own nginx
	// siteLog counts the sites' requests from nginx's access log lines;
	// nil when sites.nginx.request_metrics is off.
	siteLog *sitelog.Collector
	// webConfig serves the API over TLS (api.web_config_file); "" is plain HTTP.
	webConfig string
	sites     *sites.Operations
	// supervisor starts again a bench container stopped without the agent.
	supervisor *benches.Supervisor
}

func newOperations(ctx context.Context, cfg Config, logger *slog.Logger) (*operations, error) {
	agentDir := filepath.Join(cfg.Root, "agent")
	if err := os.MkdirAll(agentDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", agentDir, err)
	}
	hash, err := ensureToken(cfg, logger)
	if err != nil {
		return nil, err
	}
	if cfg.API.WebConfigFile != "" {
		if err := checkAPIWebConfig(cfg.API.WebConfigFile); err != nil {
			return nil, err
		}
	}
	callbackSecret, err := ensureCallbackSecret(cfg, logger)
	if err != nil {
		return nil, err
	}
	// bench.docker_host: the same engine as the bench collector's.
	docker, err := bench.NewDockerClient(cfg.Bench.DockerHost)
	if err != nil {
		return nil, fmt.Errorf("docker client (bench.docker_host): %w", err)
	}
	op := &operations{docker: docker, logger: logger, owned: cfg.Sites.Nginx.MainConfig == "", webConfig: cfg.API.WebConfigFile}
	fail := func(err error) (*operations, error) {
		op.close()
		return nil, err
	}
	nginxOpts := nginx.Options{
		Dir:         filepath.Join(agentDir, "nginx"),
		MainConfig:  cfg.Sites.Nginx.MainConfig,
		Listen:      cfg.Sites.Nginx.Listen,
		ProbeListen: cfg.Sites.Nginx.ProbeListen,
		User:        cfg.Sites.Nginx.User,
		Logger:      logger, // the manager names itself (component=nginx)
	}
	if cfg.Sites.Nginx.RequestMetrics {
		if op.siteLog, err = newSiteLog(cfg.Root, cfg.Sites.Nginx.User, logger); err != nil {
			return fail(err)
		}
	}
	if op.siteLog != nil {
		nginxOpts.AccessLogSocket = siteLogSocket(cfg.Root)
		nginxOpts.SitesServed = op.siteLog.SetSites
	}
	if op.nginx, err = nginx.New(nginxOpts); err != nil {
		return fail(fmt.Errorf("sites.nginx: %w", err))
	}
	// The admin connection is opened lazily: a missing or wrong credentials
	// file fails the site jobs that need it, with its reason, not the agent.
	op.admin = sql.OpenDB(adminConnector{path: cfg.AdminCredentialsFile(), learned: func(password string) {
		// A password the file did not have at start (or a new one): jobs
		// never record it either. Connections come from jobs, once the queue
		// is open.
		if op.queue != nil {
			op.queue.AddSecrets(password)
		}
	}})
	var offsite *backup.Offsite
	if o := cfg.Sites.Offsite; o.Endpoint != "" {
		if offsite, err = backup.NewOffsite(backup.OffsiteConfig{
			Endpoint: o.Endpoint, Bucket: o.Bucket, Region: o.Region,
			AccessKeyFile: o.AccessKeyFile, SecretKeyFile: o.SecretKeyFile, Insecure: o.Insecure,
			Logger: logger.With("component", "offsite"),
		}); err != nil {
			return fail(fmt.Errorf("sites.offsite: %w", err))
		}
	}
	runtime := benches.New(docker, benches.Options{
		Root: cfg.Root, Label: cfg.Bench.Label, Command: cfg.Sites.BenchCommand,
		ExtraHosts: cfg.Sites.ExtraHosts,
	})
	ops := &sites.Operations{
		Root:    cfg.Root,
		Runtime: runtime,
		Admin:   sites.MariaDB{DB: op.admin},
		DBHost:  cfg.Sites.DBHost,
		DBPort:  cfg.Sites.DBPort,
		Router:  op.nginx,
		SiteURL: siteURL(cfg.Sites.Nginx.Listen),
		Timeout: cfg.API.JobTimeout,
	}
	if offsite != nil { // a nil *backup.Offsite in the interface would not read as "no offsite"
		ops.Offsite = offsite
	}
	ops.Retention = backup.Retention{KeepLast: cfg.Sites.BackupRetention.KeepLast, KeepDays: cfg.Sites.BackupRetention.KeepDays}
	if op.queue, err = jobs.Open(ctx, jobs.Options{
		Path:    filepath.Join(agentDir, "jobs.db"),
		Types:   ops.Types(),
		Workers: cfg.API.Workers,
		Logger:  logger.With("component", "jobs"),
		// Jobs never record the agent's own secrets, whatever a step prints.
		Secrets:        agentSecrets(cfg, callbackSecret),
		CallbackSecret: callbackSecret,
		Retention:      cfg.API.JobRetention,
	}); err != nil {
		return fail(err)
	}
	op.sites = ops
	op.supervisor = benches.NewSupervisor(runtime, benches.SupervisorOptions{Logger: logger.With("component", "benches")})
	op.server = api.New(op.queue, ops, hash, logger.With("component", "api"))
	return op, nil
}

func (op *operations) start(ctx context.Context) {
	if op.siteLog != nil { // before nginx sends it lines
		op.siteLog.Start(ctx)
	}
	if op.owned {
		if err := op.nginx.Start(ctx); err != nil {
			// Sites are not routed until this is fixed; jobs that route fail
			// saying why. The agent and its metrics stay up.
			op.logger.Error("start nginx", "err", err)
		}
	}
	// Snippets written by an older agent, or with other options (request
	// metrics turned on), are rendered again for the same sites.
	if err := op.nginx.Refresh(ctx); err != nil {
		op.logger.Error("refresh nginx configuration", "err", err)
	}
	op.queue.Start(ctx)
	op.supervisor.Start(ctx)
}

func (op *operations) close() error {
	var errs []error
	if op.supervisor != nil {
		errs = append(errs, op.supervisor.Close())
	}
	if op.queue != nil {
		errs = append(errs, op.queue.Close())
	}
	if op.nginx != nil && op.owned {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, op.nginx.Stop(ctx))
		cancel()
	}
	if op.siteLog != nil {
		errs = append(errs, op.siteLog.Close())
	}
	if op.admin != nil {
		errs = append(errs, op.admin.Close())
	}
	if op.docker != nil {
		errs = append(errs, op.docker.Close())
	}
	return errors.Join(errs...)
}

// serve runs the API on l until ctx ends. It checks its own bearer token;
// its web configuration, if any, only adds TLS (see checkAPIWebConfig).
func (op *operations) serve(ctx context.Context, l net.Listener) error {
	return webauth.Serve(ctx, l, op.server.Handler(), op.webConfig, op.logger)
}

// ensureToken returns the API token's hash. With no hash file, it makes a
// token, keeps only its hash in the hash file and leaves the clear token in
// <root>/agent/api-token (0600) for the control plane to take.
func ensureToken(cfg Config, logger *slog.Logger) ([32]byte, error) {
	var hash [32]byte
	path := cfg.TokenHashFile()
	data, err := os.ReadFile(path)
	if err == nil {
		b, err := hex.DecodeString(strings.TrimSpace(string(data)))
		if err != nil || len(b) != len(hash) {
			return hash, fmt.Errorf("api.token_hash_file %s: want the hex SHA-256 of the token", path)
		}
		copy(hash[:], b)
		return hash, nil
	}
	if !errors.Is(err, fs.ErrNotExist) || cfg.API.TokenHashFile != "" {
		return hash, fmt.Errorf("api.token_hash_file: %w", err)
	}
	token := api.NewToken()
	hash = api.HashToken(token)
	tokenFile := cfg.TokenFile()
	if err := atomicfile.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return hash, err
	}
	if err := atomicfile.WriteFile(path, []byte(hex.EncodeToString(hash[:])+"\n"), 0o600); err != nil {
		return hash, err
	}
	logger.Info("generated the API token", "token_file", tokenFile, "hash_file", path)
	return hash, nil
}

func siteURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil { // a bare port
		host, port = "127.0.0.1", listen
	}
	if host == "" || host == "0.0.0.0" || host == "[::]" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// adminConnector reads the admin credentials on each new connection, so a
// file fixed while the agent runs is picked up; learned is told each
// password read, so that it is redacted from jobs.
type adminConnector struct {
	path    string
	learned func(password string)
}

func (c adminConnector) Connect(ctx context.Context) (driver.Conn, error) {
	creds, err := mycnf.Read(c.path)
	if err != nil {
		return nil, fmt.Errorf("sites.admin_credentials_file: %w", err)
	}
	if c.learned != nil && creds.Password != "" {
		c.learned(creds.Password)
	}
	cfg := creds.DriverConfig()
	cfg.Timeout = 10 * time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return connector.Connect(ctx)
}

func (c adminConnector) Driver() driver.Driver { return mysql.MySQLDriver{} }
