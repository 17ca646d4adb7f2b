package host

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/node_exporter/collector"
)

// node_exporter's collector package takes its configuration from kingpin flags
// it registers on kingpin.CommandLine when it is imported. That application is
// global to the process, so it is configured here, once, from our Options and
// never from os.Args. This file is the only one that touches kingpin; nothing
// else in the agent binary may parse kingpin.CommandLine, since a second parse
// would reset every flag it does not name to its default.

// nodeFlags is the state of that one parse: package-level because the flags it
// guards are.
var nodeFlags struct {
	once sync.Once
	args []string
	err  error
}

// skipDevices are the network devices that Docker makes: one veth per
// container (each bench is a container, so a busy server has dozens, coming and
// going with every restart), docker0 and the br-<id> bridges of user-defined
// networks. Their traffic is the bench containers' traffic, which the bench
// exporter reports per container; here they would only add series that churn.
const skipDevices = `^(veth.+|docker\d+|br-[0-9a-f]+)$`

// collectorName is what a node_exporter collector name looks like. It keeps a
// caller from smuggling other flags (collector.cpu.info, ...) in as names.
var collectorName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// knownNodeCollector reports whether node_exporter registered a collector of
// that name (it registers the flag --collector.<name> for each).
func knownNodeCollector(name string) bool {
	return collectorName.MatchString(name) && kingpin.CommandLine.GetFlag("collector."+name) != nil
}

// nodeArgs builds the command line node_exporter would have been started with.
// collectors must be sorted and free of duplicates, so that equal settings give
// equal args.
func nodeArgs(opts Options) []string {
	args := []string{
		"--path.procfs=" + opts.ProcFS,
		"--path.sysfs=" + opts.SysFS,
		"--path.rootfs=" + opts.RootFS,
		// udev's database is a file tree of the host like any other: under
		// the host's root when that is mounted elsewhere.
		"--path.udev.data=" + filepath.Join(opts.RootFS, "run/udev/data"),
		"--collector.netdev.device-exclude=" + skipDevices,
		"--collector.netclass.ignored-devices=" + skipDevices,
		// The filesystem collector's defaults already skip what Docker
		// mounts (/var/lib/docker/..., overlay, nsfs), so they stay.
	}
	if opts.NetdevFromProcFS {
		args = append(args, "--no-collector.netdev.netlink", "--no-collector.arp.netlink")
	}
	// A textfile directory that does not exist would make every scrape log
	// an error and report node_textfile_scrape_error 1: without one the
	// collector reports 0 and reads nothing.
	if st, err := os.Stat(opts.TextfileDirectory); err == nil && st.IsDir() {
		args = append(args, "--collector.textfile.directory="+opts.TextfileDirectory)
	}
	for _, name := range opts.Collectors {
		args = append(args, "--collector."+name)
	}
	return args
}

// parseNodeFlags configures node_exporter's collectors with args. The first call
// in a process parses them; a later call with the same args does nothing and
// one with other args fails, since the flags cannot be parsed twice.
func parseNodeFlags(args []string) error {
	nodeFlags.once.Do(func() {
		nodeFlags.args = slices.Clone(args)
		app := kingpin.CommandLine
		// Errors are returned to New, never printed or turned into an exit.
		app.Terminate(nil).UsageWriter(io.Discard).ErrorWriter(io.Discard)
		if _, err := app.Parse(args); err != nil {
			nodeFlags.err = fmt.Errorf("parse node_exporter flags %q: %w", args, err)
			return
		}
		// What node_exporter's --collector.disable-defaults does: only the
		// collectors named on the command line stay enabled.
		collector.DisableDefaultCollectors()
	})
	if nodeFlags.err != nil {
		return nodeFlags.err
	}
	if !slices.Equal(nodeFlags.args, args) {
		return fmt.Errorf("node_exporter flags are set once per process: already %q, cannot change to %q", nodeFlags.args, args)
	}
	return nil
}

// nodeFlag is the value of one of node_exporter's flags, as parseNodeFlags
// left it: how the collectors this package reimplements read node_exporter's
// configuration.
func nodeFlag(name string) string {
	f := kingpin.CommandLine.GetFlag(name)
	if f == nil {
		return ""
	}
	return f.Model().Value.String()
}
