package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/moby/moby/client"

	"github.com/hybridsuite/hybrid/agent/jobs"
	"github.com/hybridsuite/hybrid/exporters"
	"github.com/hybridsuite/hybrid/exporters/agentjobs"
	"github.com/hybridsuite/hybrid/exporters/bench"
	"github.com/hybridsuite/hybrid/exporters/host"
	"github.com/hybridsuite/hybrid/exporters/mariadb"
)

// background is a collector with work of its own between scrapes (a cache
// refreshed on a timer, an event stream).
type background interface {
	Start(ctx context.Context)
	Close() error
}

// collectorSet is the one place that lists the agent's collectors.
type collectorSet struct {
	collectors map[string]exporters.Collector
	background []background
	// nodeNames are the host collectors also reported under node_exporter's
	// node_scrape_collector_* names.
	nodeNames []string
}

// The job queue is the agent-jobs collector's source.
var _ agentjobs.Source = (*jobs.Queue)(nil)

// ops, when the job API is enabled, adds the agent-jobs collector.
func buildCollectors(cfg Config, logger *slog.Logger, ops *operations) (*collectorSet, error) {
	set := &collectorSet{collectors: map[string]exporters.Collector{}}
	add := func(name string, c exporters.Collector) error {
		if _, dup := set.collectors[name]; dup {
			return fmt.Errorf("collector %q is defined twice", name)
		}
		set.collectors[name] = c
		return nil
	}

	if cfg.Host.Enabled {
		// Each host collector logs with its own name (collector=netdev), so
		// the package's logger carries none.
		h, err := host.New(logger, host.Options{
			ProcFS:               cfg.Host.ProcFS,
			SysFS:                cfg.Host.SysFS,
			RootFS:               cfg.Host.RootFS,
			Collectors:           cfg.Host.Collectors,
			Root:                 cfg.Root,
			MariaDBDataDir:       cfg.Host.MariaDBDataDir,
			DirectoryInterval:    cfg.Host.DirectoryInterval,
			ProcessesMinInterval: cfg.Host.ProcessesMinInterval,
			TextfileDirectory:    cfg.Host.TextfileDirectory,
		})
		if err != nil {
			return nil, fmt.Errorf("host collectors: %w", err)
		}
		set.background = append(set.background, h)
		set.nodeNames = h.NodeCollectorNames()
		for name, c := range h.Collectors() {
			if err := add(name, c); err != nil {
				return nil, err
			}
		}
	}
	if cfg.MariaDB.Enabled {
		m, err := mariadbCollector(logger.With("collector", "mariadb"), mariadb.Options{
			CredentialsFile:   cfg.MariaDBCredentialsFile(),
			QueryTimeout:      cfg.MariaDB.QueryTimeout,
			LockWaitTimeout:   cfg.MariaDB.LockWaitTimeout,
			DatabasesInterval: cfg.MariaDB.DatabasesInterval,
			VariablesInterval: cfg.MariaDB.VariablesInterval,
		})
		if err != nil {
			return nil, fmt.Errorf("mariadb collector: %w", err)
		}
		set.background = append(set.background, m)
		if err := add("mariadb", m); err != nil {
			return nil, err
		}
	}
	if cfg.Bench.Enabled {
		var docker *client.Client
		if ops != nil {
			docker = ops.docker // one client for the collector and the bench operations
		}
		b, err := bench.New(logger, bench.Options{
			DockerHost: cfg.Bench.DockerHost,
			Client:     docker,
			Label:      cfg.Bench.Label,
			CgroupRoot: cfg.Bench.CgroupRoot,
			ProcRoot:   cfg.Bench.ProcFS,
		})
		if err != nil {
			return nil, fmt.Errorf("bench collector: %w", err)
		}
		set.background = append(set.background, b)
		if err := add("bench", b); err != nil {
			return nil, err
		}
	}
	if ops != nil {
		if err := add("agentjobs", agentjobs.New(ops.queue, siteList{ops.sites})); err != nil {
			return nil, err
		}
	}
	if ops != nil {
		// Started and closed with the bench operations.
		if err := add("benchsupervisor", ops.supervisor); err != nil {
			return nil, err
		}
	}
	if ops != nil && ops.siteLog != nil {
		// Started and closed with nginx, by the operations.
		if err := add("sitelog", ops.siteLog); err != nil {
			return nil, err
		}
	}
	return set, nil
}

func (s *collectorSet) start(ctx context.Context) {
	for _, b := range s.background {
		b.Start(ctx)
	}
}

func (s *collectorSet) close() error {
	var errs []error
	for _, b := range s.background {
		errs = append(errs, b.Close())
	}
	return errors.Join(errs...)
}
