// Package benches runs the bench containers: one Docker container per bench,
// labelled with its name, with a restart policy and memory/CPU limits, its
// web port published on 127.0.0.1 only, and the bench's folders
// <root>/benches/<bench>/{sites,logs,config} (owned 1000:1000) mounted where a
// Frappe bench keeps them. Bench commands run inside it (docker exec).
//
// A bench runs code the agent does not control. Its container gets a pids
// limit, no-new-privileges, no capabilities beyond a configured list, a
// rotated log and a default memory limit; a container that has a bench's
// name but not the agent's label for that bench is never adopted, changed
// or removed. A bench command whose context ends is ended too (SIGTERM, then
// SIGKILL), through pidfds of its processes on the host, and Exec returns only
// once it has exited. Its output is hostile: only a bounded tail is kept.
//
// Docker's restart policy ignores a container stopped by hand (docker kill,
// docker stop): the Supervisor starts such a bench again, with a backoff,
// unless the agent itself stopped it (the Runtime marks what it restarts,
// changes or removes on purpose).
package benches
