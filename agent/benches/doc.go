// Package benches runs the bench containers: one Docker container per bench,
// labelled with its name, with a restart policy and memory/CPU limits, its
// web port published on 127.0.0.1 only, and the bench's folders
// <root>/benches/<bench>/{sites,logs,config} (owned 1000:1000) mounted where a
// Frappe bench keeps them. Bench commands run inside it (docker exec).
package benches
