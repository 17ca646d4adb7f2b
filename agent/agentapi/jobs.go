package agentapi

import (
	"encoding/json"
	"time"
)

// Status is a job's or a step's state.
type Status string

// Job and step states. A job is Pending until a worker takes it, Running
// while its steps run, and ends Success or Failure; it never stays Running
// across a restart of the agent.
const (
	Pending Status = "Pending"
	Running Status = "Running"
	Success Status = "Success"
	Failure Status = "Failure"
	// Skipped is a step that did not run because an earlier one failed.
	Skipped Status = "Skipped"
)

// Ended says whether s is final.
func (s Status) Ended() bool { return s == Success || s == Failure }

// Job is a job as the agent reports it.
type Job struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Status  Status          `json:"status"`
	Request json.RawMessage `json:"request,omitempty"`
	Steps   []Step          `json:"steps"`
	// Result is the job type's result data (a backup's files and checksums).
	Result json.RawMessage `json:"result,omitempty"`
	// Error says why a job ended Failure ("interrupted", "timed out after 30m", ...).
	Error     string     `json:"error,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	// Attempts counts the times a worker started the job: more than one
	// means it was resumed after the agent restarted.
	Attempts    int    `json:"attempts"`
	CallbackURL string `json:"callback_url,omitempty"`
}

// Step is one ordered, recorded step of a job.
type Step struct {
	Name      string     `json:"name"`
	Status    Status     `json:"status"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	// Output is the tail of what the step printed (the last 64 KiB).
	Output string `json:"output,omitempty"`
	// Error says why a step ended Failure.
	Error string `json:"error,omitempty"`
	// Attempts counts the times the step started: more than one means it
	// was running when the agent stopped and was run again on resume.
	Attempts int `json:"attempts,omitempty"`
}

// JobCreated answers every POST that creates a job.
type JobCreated struct {
	Job string `json:"job"`
}

// Error is the body of every 4xx and 5xx answer.
type Error struct {
	Error string `json:"error"`
}

// Pong answers GET /ping.
type Pong struct {
	Message string `json:"message"`
}

// JobIDHeader carries the caller's job id: the same id twice is the same job.
const JobIDHeader = "X-Agent-Job-Id"

// CallbackHeader carries a URL the agent POSTs the final job to.
const CallbackHeader = "X-Agent-Callback-Url"
