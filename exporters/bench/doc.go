// Package bench exports the resource use and state of the bench containers:
// one series set per Docker container carrying the bench label (default
// io.hybrid.bench, whose value is the bench name), labelled name (container
// name) and bench (label value).
//
// Names follow cAdvisor where cAdvisor measures the same thing, so existing
// dashboards and rules work: container_cpu_usage_seconds_total,
// container_cpu_cfs_throttled_seconds_total, container_memory_working_set_bytes,
// container_memory_usage_bytes, container_spec_memory_limit_bytes,
// container_network_{receive,transmit}_bytes_total,
// container_fs_{reads,writes}_bytes_total, container_oom_events_total,
// container_start_time_seconds, container_last_seen. Unlike cAdvisor there is
// no per-interface or per-device label: network bytes are summed over the
// container's interfaces except lo, and block IO over devices. What cAdvisor
// lacks is under hybrid_bench_: container_restarts_total, container_running,
// container_healthy, container_last_exit_code, and containers{state}.
//
// Where the numbers come from:
//
//   - Usage is read from cgroup files on every scrape, v1 (cpuacct.usage,
//     cpu.stat throttled_time, memory.usage_in_bytes, memory.stat
//     total_inactive_file, memory.oom_control oom_kill,
//     blkio.throttle.io_service_bytes_recursive) or v2 (cpu.stat,
//     memory.current, memory.stat inactive_file, memory.events oom_kill,
//     io.stat). A container's cgroup is found from /proc/<pid>/cgroup of its
//     init process, falling back to /docker/<id> and
//     /system.slice/docker-<id>.scope, and cached for the container's run.
//     Network bytes come from /proc/<pid>/net/dev.
//   - Everything else comes from docker inspect, kept current in the
//     background: a full list and inspect on every (re)connect, then one
//     re-inspect per container event (start, die, oom, restart, health_status,
//     destroy, rename, update). Update never calls Docker, and the Docker
//     stats API is never used.
//
// Choices worth knowing:
//
//   - Usage series (cpu, memory usage and working set, fs, network) exist only
//     while the container runs; the inventory series exist for every labelled
//     container, stopped ones included, until it is removed.
//   - container_last_seen is the scrape time for a running container and
//     Docker's FinishedAt for a stopped one.
//   - container_spec_memory_limit_bytes is the inspect HostConfig.Memory,
//     0 when unlimited (as cAdvisor reports it).
//   - hybrid_bench_container_healthy is 1 when healthy, 0 when starting or
//     unhealthy, and absent when the container has no healthcheck.
//   - hybrid_bench_container_restarts_total starts at Docker's RestartCount
//     when the agent first sees the container and grows by its increases, so
//     it never goes down while the agent runs (Docker resets the count on a
//     manual start).
//   - hybrid_bench_container_last_exit_code is the code of the last exit, taken
//     from the die event when an automatic restart has already reset Docker's.
//   - container_oom_events_total is the larger of two lower bounds, both
//     monotonic: the "oom" events seen on the event stream since the agent
//     started, and the sum over the container's runs of the largest cgroup
//     oom_kill count seen in each run (the kernel counter restarts at zero in
//     every new cgroup). The second catches OOM kills that happened while the
//     event stream was down, if the container kept running long enough for a
//     scrape to see them.
//   - When the engine is unreachable, a background loop reconnects with
//     exponential backoff (0.5 s to 30 s); Update keeps sending the last known
//     inventory (with usage read fresh from the cgroups still there) and
//     returns an *UnreachableError naming the engine address, so the
//     collector's success metric drops to 0. Nothing blocks on the engine.
package bench
