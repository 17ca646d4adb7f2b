package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hybridsuite/hybrid/exporters"
)

// watchedDir is a directory whose size is measured; kind names its role.
type watchedDir struct {
	kind, path string
}

// dirUsage is one measurement of a directory.
type dirUsage struct {
	bytes, files uint64
	errors       uint64
	firstErr     error // the first entry that could not be read, if any
	ended        time.Time
	took         time.Duration
}

// dirState is what the last measurement of a directory left.
type dirState struct {
	usage   *dirUsage // nil when the directory is missing or could not be measured
	missing bool
	err     error
}

// directoriesCollector reports the disk space used under the server's
// directories. Walking them is slow (a bench holds tens of thousands of files),
// so a background loop measures them every interval and a scrape reads what the
// last measurement found.
type directoriesCollector struct {
	logger   *slog.Logger
	dirs     []watchedDir
	interval time.Duration
	now      func() time.Time

	usedDesc, filesDesc, errorsDesc, timestampDesc, durationDesc *prometheus.Desc

	mu    sync.RWMutex
	state map[string]dirState // by kind
}

var _ exporters.Collector = (*directoriesCollector)(nil)

func newDirectoriesCollector(logger *slog.Logger, dirs []watchedDir, interval time.Duration) *directoriesCollector {
	labels := []string{"path", "kind"}
	return &directoriesCollector{
		logger:   logger,
		dirs:     dirs,
		interval: interval,
		now:      time.Now,
		usedDesc: prometheus.NewDesc("hybrid_host_directory_used_bytes",
			"Disk space allocated to the files under the directory (blocks, hard links once, symlinks not followed, "+
				"other filesystems mounted below not counted), as of the last measurement.", labels, nil),
		filesDesc: prometheus.NewDesc("hybrid_host_directory_files",
			"Files of every type under the directory, itself included (what du --inodes counts), as of the last measurement.", labels, nil),
		errorsDesc: prometheus.NewDesc("hybrid_host_directory_scan_errors",
			"Entries the last measurement could not read, so that the other figures undercount; 0 normally.", labels, nil),
		timestampDesc: prometheus.NewDesc("hybrid_host_directory_scan_timestamp_seconds",
			"When the last measurement of the directory ended, in seconds since the epoch.", labels, nil),
		durationDesc: prometheus.NewDesc("hybrid_host_directory_scan_duration_seconds",
			"How long the last measurement of the directory took.", labels, nil),
		state: map[string]dirState{},
	}
}

// Update reports the last measurements. A directory that is missing (a new
// server has no archived/ yet) or not yet measured has no series.
func (c *directoriesCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var errs []error
	for _, d := range c.dirs {
		st := c.state[d.kind]
		if st.err != nil {
			errs = append(errs, st.err)
		}
		u := st.usage
		if u == nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.usedDesc, prometheus.GaugeValue, float64(u.bytes), d.path, d.kind)
		ch <- prometheus.MustNewConstMetric(c.filesDesc, prometheus.GaugeValue, float64(u.files), d.path, d.kind)
		ch <- prometheus.MustNewConstMetric(c.errorsDesc, prometheus.GaugeValue, float64(u.errors), d.path, d.kind)
		ch <- prometheus.MustNewConstMetric(c.timestampDesc, prometheus.GaugeValue, float64(u.ended.UnixNano())/1e9, d.path, d.kind)
		ch <- prometheus.MustNewConstMetric(c.durationDesc, prometheus.GaugeValue, u.took.Seconds(), d.path, d.kind)
	}
	return errors.Join(errs...)
}

// run measures now, then every interval until ctx ends.
func (c *directoriesCollector) run(ctx context.Context) {
	c.refresh(ctx)
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.refresh(ctx)
		}
	}
}

// refresh measures every directory in turn (one walk at a time, to spare the
// disks). Logs say when a directory goes missing or starts failing, not on
// every measurement.
func (c *directoriesCollector) refresh(ctx context.Context) {
	for _, d := range c.dirs {
		u, err := measureDir(ctx, d.path, c.now)
		if ctx.Err() != nil {
			return // stopping: keep the last complete measurement
		}
		c.mu.Lock()
		prev := c.state[d.kind]
		var next dirState
		switch {
		case errors.Is(err, fs.ErrNotExist):
			next = dirState{missing: true}
			if !prev.missing {
				c.logger.Debug("directory does not exist, not measured", "kind", d.kind, "path", d.path)
			}
		case err != nil:
			next = dirState{err: err}
			if prev.err == nil || prev.err.Error() != err.Error() {
				c.logger.Warn("measure directory", "kind", d.kind, "path", d.path, "err", err)
			}
		default:
			next = dirState{usage: &u}
			if u.errors > 0 && (prev.usage == nil || prev.usage.errors == 0) {
				c.logger.Warn("some entries could not be read, the directory's size undercounts",
					"kind", d.kind, "path", d.path, "unreadable", u.errors, "first_err", u.firstErr)
			}
		}
		c.state[d.kind] = next
		c.mu.Unlock()
	}
}

// measureDir adds up the space allocated to root and everything under it, as
// `du -sx` does: blocks actually allocated (a sparse or compressed file counts
// what it takes, not its length), each hard-linked file once, symlinks counted
// as themselves and never followed, and nothing on another filesystem mounted
// below root (another disk, or a backup mount, is not this directory's use of
// its disk). root itself may be a symlink (a datadir moved to a bigger disk).
// Entries that vanish during the walk are normal on a live server and skipped;
// other unreadable entries are counted. A missing root returns an error
// satisfying errors.Is(err, fs.ErrNotExist).
func measureDir(ctx context.Context, root string, now func() time.Time) (dirUsage, error) {
	start := now()
	info, err := os.Stat(root)
	if err != nil {
		return dirUsage{}, fmt.Errorf("measure %s: %w", root, err)
	}
	if !info.IsDir() {
		return dirUsage{}, fmt.Errorf("measure %s: not a directory", root)
	}
	st := info.Sys().(*syscall.Stat_t)
	w := &dirWalker{ctx: ctx, dev: uint64(st.Dev), links: map[fileID]struct{}{}}
	w.add(st, true)
	if err := w.walk(root); err != nil {
		return dirUsage{}, fmt.Errorf("measure %s: %w", root, err)
	}
	w.usage.ended = now()
	w.usage.took = w.usage.ended.Sub(start)
	return w.usage, nil
}

type fileID struct {
	dev, ino uint64
}

type dirWalker struct {
	ctx   context.Context
	dev   uint64
	links map[fileID]struct{} // files with more than one link, seen already
	usage dirUsage
}

func (w *dirWalker) add(st *syscall.Stat_t, isDir bool) {
	if !isDir && st.Nlink > 1 {
		id := fileID{dev: uint64(st.Dev), ino: st.Ino}
		if _, seen := w.links[id]; seen {
			return
		}
		w.links[id] = struct{}{}
	}
	w.usage.bytes += uint64(st.Blocks) * 512
	w.usage.files++
}

func (w *dirWalker) fail(err error) {
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	w.usage.errors++
	if w.usage.firstErr == nil {
		w.usage.firstErr = err
	}
}

// walk adds what is under dir; it fails only when ctx ends.
func (w *dirWalker) walk(dir string) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	f, err := os.Open(dir)
	if err != nil {
		w.fail(err)
		return nil
	}
	entries, err := f.ReadDir(-1) // unsorted, unlike os.ReadDir: order does not matter here
	f.Close()
	if err != nil {
		w.fail(err) // what was read still counts
	}
	for _, e := range entries {
		info, err := e.Info() // lstat: symlinks are not followed
		if err != nil {
			w.fail(err)
			continue
		}
		st := info.Sys().(*syscall.Stat_t)
		if uint64(st.Dev) != w.dev {
			continue // a mount point: another filesystem's space
		}
		w.add(st, info.IsDir())
		if info.IsDir() {
			if err := w.walk(dir + "/" + e.Name()); err != nil {
				return err
			}
		}
	}
	return nil
}
