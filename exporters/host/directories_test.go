package host

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// allocated is what the collector should count for path: its blocks, as lstat
// reports them right now.
func allocated(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	require.NoError(t, syscall.Lstat(path, &st))
	return uint64(st.Blocks) * 512
}

func writeFile(t *testing.T, path string, size int) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, bytes.Repeat([]byte("x"), size), 0o644))
}

// serverTree makes, under a temporary root:
//
//	benches/bench-a/sites/site1.db   10 000 bytes
//	benches/bench-a/big.bin         100 000 bytes
//	benches/bench-a/hard.bin        hard link to big.bin: counted once
//	benches/bench-a/etc             symlink to /etc: not followed
//	benches/bench-a/empty           0 bytes
//	data/mysql/ibdata1               50 000 bytes
//	data/mysql/sparse               10 MB long, nothing written: no blocks
//	mysql                            symlink to data/mysql: the datadir
//
// and no archived/. It returns the root and what the collector should report
// for benches and the datadir.
func serverTree(t *testing.T) (root string, benches, datadir dirUsage) {
	root = t.TempDir()
	writeFile(t, filepath.Join(root, "benches/bench-a/sites/site1.db"), 10_000)
	writeFile(t, filepath.Join(root, "benches/bench-a/big.bin"), 100_000)
	require.NoError(t, os.Link(filepath.Join(root, "benches/bench-a/big.bin"), filepath.Join(root, "benches/bench-a/hard.bin")))
	require.NoError(t, os.Symlink("/etc", filepath.Join(root, "benches/bench-a/etc")))
	writeFile(t, filepath.Join(root, "benches/bench-a/empty"), 0)
	writeFile(t, filepath.Join(root, "data/mysql/ibdata1"), 50_000)
	require.NoError(t, os.WriteFile(filepath.Join(root, "data/mysql/sparse"), nil, 0o644))
	require.NoError(t, os.Truncate(filepath.Join(root, "data/mysql/sparse"), 10<<20))
	require.NoError(t, os.Symlink(filepath.Join(root, "data/mysql"), filepath.Join(root, "mysql")))
	require.Less(t, allocated(t, filepath.Join(root, "data/mysql/sparse")), uint64(10<<20), "the filesystem of t.TempDir must support sparse files")

	for _, p := range []string{"benches", "benches/bench-a", "benches/bench-a/sites", "benches/bench-a/sites/site1.db",
		"benches/bench-a/big.bin", "benches/bench-a/etc", "benches/bench-a/empty"} {
		benches.bytes += allocated(t, filepath.Join(root, p))
		benches.files++
	}
	for _, p := range []string{"data/mysql", "data/mysql/ibdata1", "data/mysql/sparse"} {
		datadir.bytes += allocated(t, filepath.Join(root, p))
		datadir.files++
	}
	return root, benches, datadir
}

func serverDirs(root string) []watchedDir {
	return []watchedDir{
		{kind: "benches", path: filepath.Join(root, "benches")},
		{kind: "archived", path: filepath.Join(root, "archived")},
		{kind: "mariadb_datadir", path: filepath.Join(root, "mysql")},
	}
}

func TestDirectories_ServerTree_ReportsAllocatedBytesAndFiles(t *testing.T) {
	root, benches, datadir := serverTree(t)
	c := newDirectoriesCollector(slog.New(slog.DiscardHandler), serverDirs(root), time.Hour)
	c.refresh(context.Background())

	want := fmt.Sprintf(`
# HELP hybrid_host_directory_files Files of every type under the directory, itself included (what du --inodes counts), as of the last measurement.
# TYPE hybrid_host_directory_files gauge
hybrid_host_directory_files{kind="benches",path="%[1]s/benches"} %[2]d
hybrid_host_directory_files{kind="mariadb_datadir",path="%[1]s/mysql"} %[3]d
# HELP hybrid_host_directory_scan_errors Entries the last measurement could not read, so that the other figures undercount; 0 normally.
# TYPE hybrid_host_directory_scan_errors gauge
hybrid_host_directory_scan_errors{kind="benches",path="%[1]s/benches"} 0
hybrid_host_directory_scan_errors{kind="mariadb_datadir",path="%[1]s/mysql"} 0
# HELP hybrid_host_directory_used_bytes Disk space allocated to the files under the directory (blocks, hard links once, symlinks not followed, other filesystems mounted below not counted), as of the last measurement.
# TYPE hybrid_host_directory_used_bytes gauge
hybrid_host_directory_used_bytes{kind="benches",path="%[1]s/benches"} %[4]d
hybrid_host_directory_used_bytes{kind="mariadb_datadir",path="%[1]s/mysql"} %[5]d
`, root, benches.files, datadir.files, benches.bytes, datadir.bytes)
	reg := registryOf(t, c)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want),
		"hybrid_host_directory_files", "hybrid_host_directory_scan_errors", "hybrid_host_directory_used_bytes"))
	// The missing archived/ has no series at all; the others have their time.
	require.Equal(t, 2, testutil.CollectAndCount(collectorFunc{t: t, c: c}, "hybrid_host_directory_scan_timestamp_seconds"))
	require.Equal(t, 2, testutil.CollectAndCount(collectorFunc{t: t, c: c}, "hybrid_host_directory_scan_duration_seconds"))
}

func TestDirectories_MissingFolder_NoErrorLoggedOnceAtDebug(t *testing.T) {
	root, _, _ := serverTree(t)
	var logs bytes.Buffer
	c := newDirectoriesCollector(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), serverDirs(root), time.Hour)
	c.refresh(context.Background())
	c.refresh(context.Background())

	require.NoError(t, c.Update(context.Background(), make(chan prometheus.Metric, 64)))
	require.Equal(t, 1, strings.Count(logs.String(), "does not exist"), logs.String())
	require.Contains(t, logs.String(), "level=DEBUG")
	require.NotContains(t, logs.String(), "level=WARN")

	// Once it exists it is measured.
	require.NoError(t, os.Mkdir(filepath.Join(root, "archived"), 0o755))
	c.refresh(context.Background())
	require.Equal(t, 3, testutil.CollectAndCount(collectorFunc{t: t, c: c}, "hybrid_host_directory_used_bytes"))
}

func TestDirectories_NotYetMeasured_NoSeries(t *testing.T) {
	root, _, _ := serverTree(t)
	c := newDirectoriesCollector(slog.New(slog.DiscardHandler), serverDirs(root), time.Hour)
	require.Equal(t, 0, testutil.CollectAndCount(collectorFunc{t: t, c: c}))
}

func TestDirectories_RootIsAFile_UpdateFails(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "benches"), 10)
	c := newDirectoriesCollector(slog.New(slog.DiscardHandler), serverDirs(root), time.Hour)
	c.refresh(context.Background())
	err := c.Update(context.Background(), make(chan prometheus.Metric, 64))
	require.ErrorContains(t, err, "benches: not a directory")
}

func TestDirectories_StoppedMidMeasurement_KeepsLastMeasurement(t *testing.T) {
	root, benches, _ := serverTree(t)
	c := newDirectoriesCollector(slog.New(slog.DiscardHandler), serverDirs(root), time.Hour)
	c.refresh(context.Background())
	writeFile(t, filepath.Join(root, "benches/more.bin"), 200_000)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.refresh(ctx)
	require.Equal(t, benches.bytes, c.state["benches"].usage.bytes)
}

func TestHost_Start_MeasuresDirectoriesUntilClose(t *testing.T) {
	root, benches, _ := serverTree(t)
	opts := fixtureOptions()
	opts.Root = root
	opts.MariaDBDataDir = filepath.Join(root, "mysql")
	opts.DirectoryInterval = 20 * time.Millisecond
	h, err := New(slog.New(slog.DiscardHandler), opts)
	require.NoError(t, err)

	h.Start(context.Background())
	dirs := h.Collectors()[directoriesName]
	require.Eventually(t, func() bool {
		return testutil.CollectAndCount(collectorFunc{t: t, c: dirs}, "hybrid_host_directory_used_bytes") == 2
	}, 5*time.Second, 10*time.Millisecond)

	// Measured again every interval.
	writeFile(t, filepath.Join(root, "benches/more.bin"), 200_000)
	require.Eventually(t, func() bool {
		h.dirs.mu.RLock()
		defer h.dirs.mu.RUnlock()
		return h.dirs.state["benches"].usage.bytes > benches.bytes
	}, 5*time.Second, 10*time.Millisecond)

	require.NoError(t, h.Close())
	require.NoError(t, h.Close(), "Close twice")
	h.Start(context.Background()) // after Close: does nothing
	require.NoError(t, h.Close())
}
