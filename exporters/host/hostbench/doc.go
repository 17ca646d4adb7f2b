// Package hostbench benchmarks the host collectors on the machine that runs
// it, and checks that the collectors the host package reimplements report
// what node_exporter's own do on it. It is a package of its own because
// node_exporter's flags are parsed once per process: the host package's tests
// parse them with fixture paths, these with the real /proc, /sys and /.
package hostbench
