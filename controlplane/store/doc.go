// Package store is the control plane's state: servers and their
// provisioning steps, benches, sites, jobs for the agents, and API tokens.
//
// One code path serves two engines, chosen by the DSN given to Open: SQLite
// by default (the pure-Go modernc.org/sqlite, WAL, one writer connection
// and a few readers), and Postgres (pgx's database/sql driver) for a control
// plane that outgrows one machine. The schema is one set of goose
// migrations (migrations/*.sql, embedded) written in types both engines
// read alike: text ids made by the store, times as unix milliseconds, JSON
// as text. Open applies the migrations not yet applied; on Postgres under
// an advisory lock, so control planes that start together take turns.
//
// Writes that belong together are one transaction: a server's status with
// the step that explains it, a claim of jobs to deliver. Callers compose
// their own with Tx. Errors a caller decides on wrap ErrNotFound,
// ErrConflict (unique keys, mapped from both engines' error codes) and
// ErrInvalid.
//
// # Secrets
//
// No secret is stored in the database, in clear or otherwise. A server's
// SSH private key, its agent's API token and its metrics password live in
// files of mode 0600 on the control plane's host; the store keeps their
// paths (Server.SSHKeyPath, AgentTokenPath, MetricsPasswordPath), so a
// database dump or a replica holds nothing to log in with. API tokens are
// kept as their SHA-256: CreateAPIToken returns the token once. A job's
// request is shown to people and must reference secrets, never carry them.
//
// # Jobs
//
// A job's id is the X-Agent-Job-Id of every delivery, so the agent makes
// one job of it however often it is delivered. CreateJob is idempotent on
// that id. NextJobsToDeliver claims due jobs with a lease (a deliverer that
// dies leaves them due again); MarkDelivered, RetryDelivery and FailJob
// record the outcome of a delivery; UpdateJobFromAgent records the agent's
// report; JobsInFlight lists what to poll; FailOverdueJobs ends jobs past
// their deadline.
package store
