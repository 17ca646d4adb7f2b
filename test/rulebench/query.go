package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb"
)

// query evaluates instant PromQL expressions against a TSDB folder, read
// only: how the script reads `up` and scrape_duration_seconds from `hybrid
// monitor`, which has no query API, and from prometheus, the same way.
// It prints one line per expression: the value of its first sample, or NaN.
//
//	rulebench query -tsdb <dir> [-at <unix seconds>] <expr>...
func query(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rulebench query", flag.ContinueOnError)
	dir := fs.String("tsdb", "", "TSDB folder")
	at := fs.Float64("at", 0, "evaluation time, unix seconds (default: now)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ts := time.Now()
	if *at > 0 {
		ts = time.Unix(0, int64(*at*1e9))
	}
	sandbox, err := os.MkdirTemp("", "rulebench-query-")
	if err != nil {
		return fmt.Errorf("query sandbox: %w", err)
	}
	defer os.RemoveAll(sandbox)
	logger := slog.New(slog.DiscardHandler)
	db, err := tsdb.OpenDBReadOnly(*dir, sandbox, logger)
	if err != nil {
		return fmt.Errorf("open TSDB %s: %w", *dir, err)
	}
	defer db.Close()
	engine := promql.NewEngine(promql.EngineOpts{
		Logger: logger, MaxSamples: 50_000_000, Timeout: 2 * time.Minute, LookbackDelta: 5 * time.Minute,
	})
	for _, expr := range fs.Args() {
		q, err := engine.NewInstantQuery(ctx, db, nil, expr, ts)
		if err != nil {
			return fmt.Errorf("query %q: %w", expr, err)
		}
		res := q.Exec(ctx)
		if res.Err != nil {
			return fmt.Errorf("query %q: %w", expr, res.Err)
		}
		v := "NaN"
		if vec, err := res.Vector(); err == nil && len(vec) > 0 {
			v = strconv.FormatFloat(vec[0].F, 'g', 6, 64)
		}
		fmt.Fprintln(stdout, v)
		q.Close()
	}
	return nil
}
