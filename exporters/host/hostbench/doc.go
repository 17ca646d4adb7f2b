// Package hostbench benchmarks the host collectors on the machine that runs
// it. It is a package of its own because node_exporter's flags are parsed once
// per process: the host package's tests parse them with fixture paths, these
// benchmarks with the real /proc, /sys and /.
package hostbench
