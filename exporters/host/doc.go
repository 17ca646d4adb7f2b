// Package host collects the metrics of the server itself: node_exporter's
// collectors, embedded so that series are node_exporter's to the letter (the
// "Node Exporter Full" dashboard and the node-mixin rules work unchanged), and
// two collectors node_exporter has no equivalent for: the disk space used by
// the server's directories, and processes per user. Linux only.
//
// # node_exporter's collectors
//
// Each node_exporter collector is one of our collectors under node_exporter's
// name ("cpu", "meminfo", ...), configured by node_exporter's process-wide
// kingpin flags, parsed once from Options in flags.go. A collector that
// reports no data (the host lacks the feature) succeeds with no series.
//
// Eighteen of the default ones are reimplemented here, one file each (arp,
// conntrack, cpu, entropy, filefd, filesystem, loadavg, meminfo, netclass,
// netdev, netstat, pressure, sockstat, softnet, stat, time, udp_queues,
// vmstat), because node_exporter's cost several times what the work needs
// (figures: docs/performance.md). node_exporter's open every file on every
// scrape (or a netlink socket, for arp and netdev), parse whole files into
// maps, and build a descriptor per series per scrape; ours keep the files
// open and re-read them with pread (procfiles.go), parse in place, and build
// descriptors once. Their series are node_exporter's (names, labels, help,
// types, values): TestReimplemented_SameAsNodeExporter and the netclass and
// netstat tests compare them with node_exporter's own collectors on the
// fixture trees, and hostbench does so on this machine's /proc and /sys
// (arp and netdev against node_exporter's netlink mode), so an upgrade of
// node_exporter that changes them fails a test. node_filefd_allocated does
// not count the file opened to read it, as node_exporter's does.
//
// Still node_exporter's own: diskstats (udev's files are replaced, not
// rewritten, so they cannot be kept open), os, mdadm, timex, uname and
// textfile (DefaultCollectors); netdev and filesystem too when node_exporter
// flags they do not follow are set.
//
// What Docker makes (veth*, docker0, br-* devices, its mounts) is skipped:
// bench containers are reported per container by the bench exporter.
// node_exporter's processes collector is not offered (the name is ours);
// systemd, hwmon, thermal_zone, edac, nfs and interrupts can be added by name.
//
// # Directories
//
// "directories" reports the disk space under <Root>/benches, <Root>/archived
// and the MariaDB datadir, as `du -sx` counts it, measured in the background
// every DirectoryInterval; a scrape reports the last measurement. A missing
// directory has no series.
//
// # Processes
//
// "processes" counts processes and threads, and adds up resident memory and
// CPU time, per effective user (as ps and top show it). The CPU counter adds
// what each live process used since the previous scrape, so it stays
// monotonic across exits. The effective uid is the owner of /proc/<pid> (one
// fstatat, as ps does; true for every process since Linux 4.11, older kernels
// read status); gopsutil is not used, for its cost (BenchmarkProcesses).
//
// # The agent's own process
//
// SelfCollector reports client_golang's process_* series for the agent
// process, with its files kept open: the agent registers it in place of
// client_golang's process collector.
//
// # Files kept open
//
// One file per process (at most 8192, and a quarter of the open-file limit),
// 22 per network device (at most 4096, and an eighth of the limit) and one
// more for netdev, up to five per CPU and about thirty more; beyond the
// limits, files are opened per scrape. A file that has gone fails its read
// and is opened again, or dropped. Host.Close closes them.
package host
