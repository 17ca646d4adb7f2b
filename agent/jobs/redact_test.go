package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// A secret a step registers, and one the queue was opened with, appear
// nowhere in what the job records: output, step error, job error, result.
func TestSecrets_RedactedFromOutputErrorsAndResult(t *testing.T) {
	const jobSecret, agentSecret = "job-secret-8f3a91", "agent-secret-77c2e0"
	leaky := Type{Name: "leaky", Steps: func(json.RawMessage) ([]Step, error) {
		return []Step{
			{Name: "handle", Run: func(ctx context.Context, run *Run) error {
				run.Secret(jobSecret)
				fmt.Fprintf(run.Output(), "password is %s and token %s\n", jobSecret, agentSecret)
				return run.SetResult(map[string]string{"leak": jobSecret})
			}},
			{Name: "fail", Run: func(ctx context.Context, run *Run) error {
				run.Log("still %s", jobSecret)
				return errors.New("command --db-password " + jobSecret + " failed; token " + agentSecret)
			}},
		}, nil
	}}
	q := openTestQueue(t, Options{Types: []Type{leaky}, Secrets: []string{agentSecret}})
	q.Start(t.Context())
	_, _, err := q.Submit(t.Context(), Submission{ID: "leak1", Type: "leaky", Request: json.RawMessage(`{}`)})
	require.NoError(t, err)
	job := waitEnded(t, q, "leak1")
	require.Equal(t, agentapi.Failure, job.Status)

	all, err := json.Marshal(job)
	require.NoError(t, err)
	assert.NotContains(t, string(all), jobSecret)
	assert.NotContains(t, string(all), agentSecret)
	assert.Contains(t, job.Steps[0].Output, "password is "+redacted)
	assert.Contains(t, job.Error, "--db-password "+redacted)
}

// A secret with characters JSON escapes is redacted from a result too, and a
// secret containing another is replaced whole, whichever was added first.
func TestSecrets_EscapedInJSONAndNested_RedactedWhole(t *testing.T) {
	agent := &secrets{}
	agent.add("pa55w0rd") // inside the job's longer secret below
	job := agent.child()
	job.add(`my&"pa55w0rd"<x>`)

	b, err := json.Marshal(map[string]string{"leak": `my&"pa55w0rd"<x>`})
	require.NoError(t, err)
	got := job.redact(string(b))
	assert.Equal(t, `{"leak":"`+redacted+`"}`, got)
	assert.Equal(t, "pw "+redacted+" and "+redacted, job.redact(`pw my&"pa55w0rd"<x> and pa55w0rd`))
}
