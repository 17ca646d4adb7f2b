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
// Most of the default ones are reimplemented here, one file each (conntrack,
// cpu, filefd, loadavg, meminfo, netclass, netstat, pressure, sockstat, stat,
// time, vmstat), because node_exporter's cost several times what the work
// needs. On a small VM (BenchmarkHostCollector, cpu-ns/op), node_exporter's
// netclass and netstat took 2.3 ms of CPU per scrape, ours 0.25 ms; the ten
// others 0.74 ms, ours 0.16 ms (cpu 186 us to 53, meminfo 112 to 22, vmstat
// 92 to 28, sockstat 77 to 11, pressure 70 to 12, conntrack 62 to 11, stat 60
// to 9, time 47 to 9, filefd and loadavg 16 to 2). Their series are node_exporter's to the letter (names,
// labels, help, types, values), configured by node_exporter's own flags, read
// back from kingpin (nodeFlag); cpu with --collector.cpu.info, or its
// flags-include or bugs-include, is node_exporter's own. TestNetClass_,
// TestNetstat_ and TestReimplemented_SameAsNodeExporter run node_exporter's
// collector and ours over the fixture trees, and hostbench's
// TestReimplementedCollectors_SameAsNodeExporter_OnThisMachine over the real
// /proc and /sys (each of our values between two of node_exporter's reads), so
// an upgrade of node_exporter that changes them fails a test. One value
// differs by construction: node_filefd_allocated does not count a file opened
// to read it, as node_exporter's does.
//
// Where the time went in node_exporter's: opening every file on every scrape
// through *os.File (on a VM, opening a /proc or /sys file costs more than
// reading it), parsing whole files into maps or structs of which a few fields
// are used (/proc/stat's every interrupt, for cpu and stat alike), and
// building a descriptor per series per scrape. Ours keep the files open and
// re-read them with pread (procfiles.go: keptFile), which makes the kernel
// generate them afresh; parse them in place; and build descriptors once.
// netclass keeps the 22 files it uses of each device open; node_exporter's
// opens about 30. Its --collector.netclass.netlink mode, cheaper, was not
// taken: its series differ (node_network_info loses adminstate,
// node_network_flags holds other bits, node_network_dormant repeats the link
// mode, an unknown speed becomes 5.4e14, down devices get a carrier) and it
// reads /sys whatever --path.sysfs says.
//
// Still node_exporter's: netdev (netlink, one socket per scrape), filesystem
// (a statfs per mount), diskstats (device filters, and udev's database, whose
// files udev replaces rather than rewrites, so they cannot be kept open), os,
// mdadm, timex and uname.
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
// processes and the reimplemented node_exporter collectors keep the /proc and
// /sys files they read on every scrape open (procfiles.go): on a VM, opening a
// file costs more than reading it. That is one file per process (at most
// 8192, and a quarter of the open-file limit), 22 per network device (at most
// 4096 files, and an eighth of the limit), up to five per CPU and about twenty
// more; beyond the limits, files are opened per scrape. A file that has gone
// (a CPU unplugged, a device removed) fails its read and is opened again, or
// dropped when its directory no longer lists it. Host.Close closes them.
package host
