// Package host collects the metrics of the server itself: node_exporter's
// collectors, embedded so that series are node_exporter's to the letter (the
// "Node Exporter Full" dashboard and the node-mixin rules work unchanged), and
// two collectors node_exporter has no equivalent for: the disk space used by
// the server's directories, and processes per user. Linux only.
//
// # node_exporter's collectors
//
// Each node_exporter collector is one of our collectors under node_exporter's
// name ("cpu", "meminfo", ...). node_exporter is configured by process-wide
// kingpin flags, parsed once, from Options, in flags.go. A collector that
// reports no data (the host lacks the feature) succeeds with no series.
//
// Two of them, netclass and netstat, are reimplemented here (netclass.go,
// netstat.go) because node_exporter's cost several times what the work needs:
// together 2.3 ms of CPU per scrape on a small VM, against 0.25 ms now. The
// series are node_exporter's to the letter, configured by the same flags;
// TestNetClass_SameAsNodeExporter and TestNetstat_SameAsNodeExporter run
// node_exporter's own collector and ours over the fixture trees, and
// hostbench's TestReimplementedCollectors_SameAsNodeExporter_OnThisMachine
// over the real /proc and /sys, so an upgrade of node_exporter that changes
// them fails a test. node_exporter's netclass opens and reads every file of
// every device on every scrape (22 used, about 30 read) through *os.File;
// ours keeps the 22 open and re-reads them with pread (procfiles.go), which
// sysfs answers afresh. Its --collector.netclass.netlink mode, cheaper, was
// not taken: its series differ (node_network_info loses adminstate,
// node_network_flags holds other bits, node_network_dormant repeats the link
// mode, an unknown speed becomes 5.4e14, down devices get a carrier) and it
// reads /sys whatever --path.sysfs says. node_exporter's netstat splits the
// three files into maps of strings, runs its field regexp over every field
// and builds a descriptor per series on every scrape; ours keeps the files
// open, parses them in place and matches each field name once.
//
// DefaultCollectors, and why:
//
//   - cpu, stat, loadavg, meminfo, vmstat, pressure: CPU, memory, load and
//     stall (PSI) figures every dashboard and the node-mixin's saturation and
//     memory alerts use; stat also gives boot time, forks and running/blocked
//     processes.
//   - filesystem, diskstats: space, inodes and I/O of the disks (disk-full and
//     I/O saturation alerts). node_exporter's default exclusions already skip
//     what Docker mounts (/var/lib/docker/..., overlay, nsfs).
//   - netdev, netclass, netstat, sockstat, conntrack: traffic and errors per
//     interface, link state (the interface-flapping alert), TCP counters and
//     the conntrack table, which Docker's NAT fills. netdev and netclass skip
//     the veth*, docker0 and br-* devices Docker makes for bench containers:
//     one per container, churning with every restart, and already reported per
//     container by the bench exporter.
//   - filefd: open files against the limit (node-mixin's alert).
//   - time, timex: clock and NTP sync (clock skew alerts).
//   - uname, os: kernel and distribution; node_uname_info is how the
//     dashboards list instances.
//   - mdadm: software RAID state (array degraded alerts); customer servers may
//     be dedicated machines with mdadm RAID1, and on others it costs one
//     missing file.
//
// Left out: node_exporter's processes (its name is taken here, and our
// per-user collector reads the same files), systemd and logind (D-Bus),
// hwmon, thermal_zone and edac (mostly VMs here; add them by name on bare
// metal), mountstats, nfs and nfsd (no NFS), interrupts and softirqs (many
// series, little use here), entropy (constant since Linux 5.18), textfile (our
// own collectors cover what it would carry), arp, softnet, schedstat.
//
// # Directories
//
// "directories" reports the disk space under <Root>/benches, <Root>/archived
// and the MariaDB datadir, as `du -sx` counts it (allocated blocks, hard links
// once, symlinks not followed, other filesystems mounted below skipped).
// Walking them is slow, so Start runs a measurement every DirectoryInterval
// in the background and a scrape reports the last one. A missing directory (a
// new server has no archived/) has no series. Paths are as the agent sees
// them: they are not joined to RootFS.
//
// # Processes
//
// "processes" counts processes and threads, and adds up resident memory and
// CPU time, per user: the effective user, as ps and top show it, named
// through the agent's passwd database (the uid itself when it has no name,
// as for a user that exists only inside a container). The CPU counter is
// kept monotonic across process exits: it adds what each live process used
// since the previous scrape, so time used by a process that starts and ends
// between two scrapes is missed.
//
// It costs about 5 us of CPU per process and scrape: it lists ProcFS with
// getdents, reads /proc/<pid>/stat (threads, RSS, CPU times, start time)
// through a file kept open from one scrape to the next (procfiles.go), and
// takes the effective uid from the owner of the /proc/<pid> directory, one
// fstatat, as ps does, rather than from /proc/<pid>/status, which costs the
// kernel more than stat does. Since Linux 4.11 that owner is the effective
// uid for every process: the kernel makes the files under /proc/<pid> of a
// non-dumpable process (one that changed its uids, as a daemon dropping root
// does) root's, but not the directory itself.
// TestProcesses_NonDumpableProcess_CountsUnderEffectiveUser checks it, and
// TestProcessDirectoryOwner_IsEffectiveUID_OnThisMachine for every process of
// the machine. On an older kernel (from <ProcFS>/sys/kernel/osrelease) the
// collector reads status instead. gopsutil is not used: its Process objects
// read four files (status twice), make a getpriority syscall each and
// allocate much more; BenchmarkProcesses in processes_test.go compares.
//
// # Files kept open
//
// processes, netclass and netstat keep the /proc and /sys files they read on
// every scrape open (procfiles.go): on a VM, opening a file costs more than
// reading it. That is one file per process (at most 8192, and a quarter of the
// open-file limit) and 22 per network device (at most 4096 files, and an
// eighth of the limit); beyond, files are opened per scrape. Host.Close
// closes them.
package host
