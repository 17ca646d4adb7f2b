// Package agentclient is the one way the control plane talks to a server's
// agent (hybrid-agent's job API, messages in agent/agentapi).
//
// A Client per server delivers jobs (Deliver, with the control plane's job id
// in X-Agent-Job-Id, so a delivery retried after a timeout or a restart of
// the control plane is the same job), reads them back (Poll, batched by 100)
// and pings the agent. Connection errors, timeouts and 5xx answers are
// retried with exponential backoff and full jitter; a 4xx is final and comes
// back as a *RejectedError carrying the agent's message, which is the job's
// delivery failure. Every request goes through the server's circuit breaker:
// after FailureThreshold requests in a row failed it opens, and calls fail at
// once with ErrCircuitOpen (no network) until a cool-down passed and a ping
// succeeded. A caller treats ErrCircuitOpen and other non-rejection errors as
// "not now": the job stays undelivered and is delivered later.
//
// A Poller asks every server with open jobs for them, once per interval and
// one batched request per server, and hands what the agents report to a
// Sink; NewCallbackHandler serves the agents' signed callbacks (the fast path)
// to the same Sink. A job still unfinished after its deadline is given to
// the Sink's Expire with DeadlineReason, whatever the agent says (or
// when it cannot be reached), so no job stays open forever.
//
// Tokens and callback secrets never appear in errors or logs, and URLs in
// errors carry no userinfo (a base URL with userinfo is refused).
package agentclient
