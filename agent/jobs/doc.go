// Package jobs runs the agent's jobs durably: each job is a row in a SQLite
// file with ordered, recorded steps, so that a job survives the agent being
// killed. The rules it keeps, each a pain of the original agent:
//
//   - never stuck Pending: workers take the oldest Pending job, and Start
//     takes the ones left from before a restart;
//   - never Running after a restart: Open sets jobs found Running back to
//     Pending, to resume at the step that was running (or fails them
//     "interrupted" when their type is not resumable);
//   - never twice at once: a job is claimed in a write transaction, the only
//     connection that writes, and the store file is locked by one process;
//   - a timeout that reports itself: "timed out after 30m" on the job and on
//     the step that was running, recorded once the step has returned: a
//     cancelled or timed-out job holds its worker until then (StopTimeout
//     bounds that; a step stuck past it is counted and its job stays
//     Running);
//   - never two jobs on one site or bench at once: a job holds its Targets
//     while it runs, and jobs on one target run in submission order;
//   - never Running because a write failed: the writes that record a step's
//     start and end are retried, and Healthy says the store cannot be
//     written meanwhile;
//   - bounded: ended jobs older than Retention are pruned, but the last of
//     each type per target, and lists come in pages without step output;
//   - a callback delivered or retried: its state is kept in the store, so a
//     restart goes on delivering.
//
// Steps must be idempotent: a step that was running when the agent died runs
// again (Run.Attempt says which time), while steps that completed do not.
package jobs
