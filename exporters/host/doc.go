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
// between two scrapes is missed. gopsutil lists the processes (with
// HOST_PROC set to ProcFS through its context); the two small files per
// process are read directly, since gopsutil's Process objects read four
// (status twice), make a getpriority syscall each and allocate much more:
// see BenchmarkProcesses in processes_test.go for the comparison.
package host
