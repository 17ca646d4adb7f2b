package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hybridsuite/hybrid/exporters"
	"github.com/hybridsuite/hybrid/exporters/mariadb"
)

// mariadbCollector is the MariaDB collector, or, when its credentials file
// is missing or unreadable at start, a stand-in that reports mysql_up 0 and
// why (the exporter set logs a lasting failure once) until the file is
// there. The rest of the agent, the job API included, does not depend on
// that file, so it does not stop the agent. Any other problem with the file
// (readable by others, malformed) still refuses the start.
func mariadbCollector(logger *slog.Logger, opts mariadb.Options) (interface {
	exporters.Collector
	background
}, error) {
	m, err := mariadb.New(logger, opts)
	if err == nil {
		return m, nil
	}
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
		return nil, err
	}
	return &lazyMariaDB{
		logger: logger,
		opts:   opts,
		upDesc: prometheus.NewDesc("mysql_up", "Whether the MariaDB server answered the exporter's queries (1) or not (0).", nil, nil),
	}, nil
}

// lazyMariaDB makes the MariaDB collector at the first scrape that finds
// the credentials file, and delegates to it from then on.
type lazyMariaDB struct {
	logger *slog.Logger
	opts   mariadb.Options
	upDesc *prometheus.Desc

	mu       sync.Mutex
	inner    *mariadb.Collector
	startCtx context.Context // the agent's, from Start: the inner collector's background work runs under it
	closed   bool
}

func (c *lazyMariaDB) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	inner, err := c.collector()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.upDesc, prometheus.GaugeValue, 0)
		return err
	}
	return inner.Update(ctx, ch)
}

func (c *lazyMariaDB) collector() (*mariadb.Collector, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inner != nil {
		return c.inner, nil
	}
	if c.closed {
		return nil, errors.New("mariadb: collector closed")
	}
	m, err := mariadb.New(c.logger, c.opts)
	if err != nil {
		return nil, fmt.Errorf("mariadb.credentials_file: %w", err)
	}
	if c.startCtx != nil {
		m.Start(c.startCtx)
	}
	c.inner = m
	c.logger.Info("mariadb credentials file is there now; collecting", "file", c.opts.CredentialsFile)
	return m, nil
}

func (c *lazyMariaDB) Start(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.startCtx = ctx
	if c.inner != nil {
		c.inner.Start(ctx)
	}
}

func (c *lazyMariaDB) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.inner != nil {
		return c.inner.Close()
	}
	return nil
}
