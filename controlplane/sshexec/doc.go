// Package sshexec runs commands and writes files on a server, the way the
// control plane's provisioning steps need: one small Executor interface, with
// an SSH implementation (Dial, golang.org/x/crypto/ssh and pkg/sftp) and a
// local one (NewLocal, for `--server local`), so a step is written once.
//
// Commands are argv, never a command line: Run quotes every word for the
// remote POSIX shell (Quote), so a word like `$(touch /tmp/x)` or `a; b`
// reaches the program verbatim. A step that needs a pipeline runs
// []string{"sh", "-c", script, "sh", arg1...} with its arguments as words.
//
// Secrets never go in Command.Args: a command line is visible to every user
// of the server (ps, /proc) and ends up in step records and error messages.
// They go through Command.Stdin or a file written by Upload with mode 0600.
// Values listed in Command.Redact are replaced by "***" in the output tails,
// in Command.String and in errors, as a second line of defence for programs
// that echo what they read. Environment variables are not passed: sshd's
// AcceptEnv refuses them on most servers.
//
// Host keys are pinned: Dial accepts only Config.HostKey when it is set; with
// no pinned key it connects only if Config.TrustOnFirstUse says so, and
// Client.HostKey returns the key presented so the caller can store it. A
// different key is refused with *HostKeyChangedError before anything runs.
//
// When ctx ends, Run ends the command's whole process group on the server
// (SIGTERM, then SIGKILL), through a second session: sshd refuses the
// protocol's own signal request for root logins. A connection that is lost
// (keepalives unanswered) fails the commands on it, but what they started
// may still be running on the server: provisioning steps are idempotent and
// are retried, not resumed.
package sshexec
