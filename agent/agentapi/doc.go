// Package agentapi holds the messages between the control plane and the
// agent: the job records the agent returns and the requests that create jobs.
// Add fields or new messages; never change the meaning of old ones.
package agentapi
