// Package evaluator is `hybrid monitor`: it scrapes the agents of every
// configured server and probes every configured site, stores the samples in an
// embedded TSDB (prometheus/prometheus's tsdb as a library), evaluates the rule
// groups with prometheus/prometheus's rules manager, and hands firing and
// resolved alerts to alerting/. It lives in the control core, never in the agent.
package evaluator
