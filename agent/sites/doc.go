// Package sites defines the agent's job types: what creating, updating,
// backing up, restoring and archiving benches and sites does, as ordered,
// idempotent steps run by agent/jobs. A step that is re-run after the agent
// restarted finds its own earlier work and goes on from there.
package sites
