// Package sites defines the agent's job types: what creating, updating,
// backing up, restoring and archiving benches and sites does, as ordered,
// idempotent steps run by agent/jobs. A step that is re-run after the agent
// restarted finds its own earlier work and goes on from there.
//
// Jobs that create something (bench.new, site.new) first claim the name
// (claims.go), so two jobs never make the same bench or site, and undo what
// they made when a later step fails (undo.go): a retry of the same name
// starts clean, or the job's result names what was left and why. Secrets
// (a site's database password) never go on a bench command line and are
// registered with every step of a job on the site (secrets.go).
package sites
