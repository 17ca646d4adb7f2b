// Package api is the agent's HTTP API: the control plane creates jobs with
// POSTs and polls them with GET /jobs/<ids>. Every route but GET /ping needs
// the bearer token, which the agent stores only as a SHA-256 hash and checks
// in constant time. Every name in a path or body is checked against a strict
// pattern before anything is created.
package api
