// Command rulebench serves the /metrics of simulated hybrid agents, one
// listener each on loopback (so each has its own `instance`), for
// scripts/rulebench.sh: `hybrid monitor` and Debian's prometheus scrape the
// same agents and evaluate the same rules, and the script compares them.
//
// Each agent serves a real agent's scrape (testdata/agent-scrape.prom) plus
// bench containers, agent jobs, sites and a MariaDB replica, about 1200
// series. Counters increase and gauges wobble with time, with parameters
// drawn from a generator seeded with the server's index. Exposition texts are
// precomputed; a scrape only formats the values.
//
//	rulebench -servers 500 -targets targets.txt
//
// writes "<name> <host:port>" per line to targets.txt once every listener is
// up, and serves until interrupted. `rulebench query -tsdb <dir> <expr>...`
// evaluates PromQL against a TSDB folder (see query.go).
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

//go:embed testdata/agent-scrape.prom
var template []byte

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:]))
}

func run(ctx context.Context, args []string) int {
	if len(args) > 0 && args[0] == "query" {
		if err := query(ctx, args[1:], os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "rulebench: %v\n", err)
			return 1
		}
		return 0
	}
	fs := flag.NewFlagSet("rulebench", flag.ContinueOnError)
	n := fs.Int("servers", 500, "number of simulated agents")
	host := fs.String("host", "127.0.0.1", "address the agents listen on, each on a free port")
	targets := fs.String("targets", "", "write `<name> <host:port>` per agent here once all listen")
	statsAddr := fs.String("stats", "", "serve `host:port`/stats: per scraper, agents scraped recently and scrapes")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := serve(ctx, *n, *host, *targets, *statsAddr); err != nil {
		fmt.Fprintf(os.Stderr, "rulebench: %v\n", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, n int, host, targetsFile, statsAddr string) error {
	start := time.Now()
	exp := &exposition{}
	// The template's MariaDB collector was down: the generated families
	// stand for it.
	drop := func(name string) bool { return strings.HasPrefix(name, "mysql_") }
	if err := exp.parseTemplate(template, drop); err != nil {
		return err
	}
	exp.addGenerated(float64(start.Unix()))

	bufs := sync.Pool{New: func() any { b := make([]byte, 0, 256<<10); return &b }}
	var lines strings.Builder
	var servers []*http.Server
	errc := make(chan error, n+1)
	st := newStats(n)
	if statsAddr != "" {
		l, err := net.Listen("tcp", statsAddr)
		if err != nil {
			return fmt.Errorf("listen for stats: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/stats", st)
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, srv)
		go func() {
			if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve stats: %w", err)
			}
		}()
	}
	for i := range n {
		s := newServer(exp, uint64(i)+1)
		name := fmt.Sprintf("srv%04d.bench.example", i+1)
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return fmt.Errorf("listen for %s: %w", name, err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
			bp := bufs.Get().(*[]byte)
			b := s.render((*bp)[:0], time.Since(start).Seconds())
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			if _, err := w.Write(b); err == nil {
				st.scraper(r.URL.Query().Get("scraper")).done(i, time.Now())
			}
			*bp = b
			bufs.Put(bp)
		})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, srv)
		go func() {
			if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve %s: %w", name, err)
			}
		}()
		fmt.Fprintf(&lines, "%s %s\n", name, l.Addr())
	}
	sample := newServer(exp, 1).render(nil, 0)
	fmt.Fprintf(os.Stderr, "rulebench: %d agents, %d series and %d bytes each\n", n, len(exp.samples), len(sample))
	if targetsFile != "" {
		if err := writeAtomic(targetsFile, []byte(lines.String())); err != nil {
			return err
		}
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		srv.Shutdown(shutdown)
	}
	return err
}

// writeAtomic writes data to path via a temporary file, so that a reader
// waiting for path sees all of it or nothing.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".targets-*")
	if err != nil {
		return fmt.Errorf("write targets: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write targets: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write targets: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write targets: %w", err)
	}
	return nil
}
