// Command scrapebench scrapes Prometheus exporters side by side and prints, for
// each, scrape latency (p50, p99), CPU seconds per scrape and memory, read from
// /proc/<pid> of the exporter, and the ratio of ours to the peer's. It is how
// `make bench` measures; see docs/performance.md.
//
//	scrapebench -n 200 -target ours,http://127.0.0.1:9470/metrics,1234,hybrid,/path/password \
//	                   -target peer,http://127.0.0.1:9100/metrics,5678
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat; it is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

type target struct {
	name, url     string
	pid           int
	user, pass    string
	latencies     []time.Duration
	cpu           time.Duration
	rss, hwm      int64
	bytes, series int
}

type targetList []*target

func (l *targetList) String() string { return fmt.Sprint(len(*l)) }

func (l *targetList) Set(v string) error {
	parts := strings.Split(v, ",")
	if len(parts) != 3 && len(parts) != 5 {
		return fmt.Errorf("target %q: want name,url,pid[,user,password-file]", v)
	}
	pid, err := strconv.Atoi(parts[2])
	if err != nil || pid <= 0 {
		return fmt.Errorf("target %q: pid %q is not a process id", v, parts[2])
	}
	t := &target{name: parts[0], url: parts[1], pid: pid}
	if len(parts) == 5 {
		pass, err := os.ReadFile(parts[4])
		if err != nil {
			return fmt.Errorf("target %q: %w", v, err)
		}
		t.user, t.pass = parts[3], strings.TrimSpace(string(pass))
	}
	*l = append(*l, t)
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "scrapebench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("scrapebench", flag.ContinueOnError)
	n := fs.Int("n", 200, "scrapes per target")
	warmup := fs.Int("warmup", 3, "scrapes per target before measuring")
	title := fs.String("title", "", "heading printed above the table")
	var targets targetList
	fs.Var(&targets, "target", "name,url,pid[,user,password-file]; repeat; the first is ours, the second the peer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(targets) == 0 {
		return errors.New("no -target given")
	}
	client := &http.Client{Timeout: 30 * time.Second}
	for _, t := range targets {
		for range *warmup {
			if _, _, err := scrape(ctx, client, t); err != nil {
				return err
			}
		}
		before, err := cpuTime(t.pid)
		if err != nil {
			return err
		}
		for i := range *n {
			start := time.Now()
			size, series, err := scrape(ctx, client, t)
			if err != nil {
				return fmt.Errorf("%s scrape %d: %w", t.name, i, err)
			}
			t.latencies = append(t.latencies, time.Since(start))
			t.bytes, t.series = size, series
		}
		after, err := cpuTime(t.pid)
		if err != nil {
			return err
		}
		t.cpu = (after - before) / time.Duration(*n)
		if t.rss, t.hwm, err = memory(t.pid); err != nil {
			return err
		}
	}
	if *title != "" {
		fmt.Fprintf(out, "\n%s (%d scrapes each)\n\n", *title, *n)
	}
	fmt.Fprintln(out, "| exporter | series | p50 latency | p99 latency | CPU per scrape | RSS | peak RSS |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|---:|")
	for _, t := range targets {
		sort.Slice(t.latencies, func(i, j int) bool { return t.latencies[i] < t.latencies[j] })
		fmt.Fprintf(out, "| %s | %d | %s | %s | %s | %.1f MiB | %.1f MiB |\n", t.name, t.series,
			ms(percentile(t.latencies, 0.50)), ms(percentile(t.latencies, 0.99)), ms(t.cpu),
			float64(t.rss)/(1<<20), float64(t.hwm)/(1<<20))
	}
	if len(targets) >= 2 {
		ours, peer := targets[0], targets[1]
		fmt.Fprintf(out, "\nratio %s / %s: p50 latency %s, CPU per scrape %s, RSS %s\n", ours.name, peer.name,
			ratio(float64(percentile(ours.latencies, 0.5)), float64(percentile(peer.latencies, 0.5))),
			ratio(float64(ours.cpu), float64(peer.cpu)),
			ratio(float64(ours.rss), float64(peer.rss)))
	}
	return nil
}

func scrape(ctx context.Context, client *http.Client, t *target) (size, series int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return 0, 0, err
	}
	if t.user != "" {
		req.SetBasicAuth(t.user, t.pass)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("%s: HTTP %s", t.url, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		size += len(line) + 1
		if len(line) > 0 && line[0] != '#' {
			series++
		}
	}
	return size, series, sc.Err()
}

// cpuTime is the user+system CPU time the process has used.
func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("cpu time of pid %d: short stat line", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// memory is the resident and peak resident set size of the process, in bytes.
func memory(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("memory of pid %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		switch key {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			hwm = kb << 10
		}
	}
	return rss, hwm, sc.Err()
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * q)
	return sorted[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/b)
}
