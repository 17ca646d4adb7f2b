package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ServerStatus is where a server is in its life.
type ServerStatus string

// A server is Pending when added, Provisioning while its steps run, then
// Active, or Broken with the failed step recorded.
const (
	ServerPending      ServerStatus = "Pending"
	ServerProvisioning ServerStatus = "Provisioning"
	ServerActive       ServerStatus = "Active"
	ServerBroken       ServerStatus = "Broken"
)

func (st ServerStatus) valid() bool {
	switch st {
	case ServerPending, ServerProvisioning, ServerActive, ServerBroken:
		return true
	}
	return false
}

// Specs is what the control plane saw of a server's machine.
type Specs struct {
	OS          string `json:"os,omitempty"` // "debian 12"
	CPUs        int    `json:"cpus,omitempty"`
	MemoryBytes int64  `json:"memory_bytes,omitempty"`
	DiskBytes   int64  `json:"disk_bytes,omitempty"`
}

// Server is a customer's server. Its secrets are not here: the *Path fields
// name 0600 files on the control plane's host that hold them.
type Server struct {
	ID      string
	Name    string
	Address string
	Port    int
	SSHUser string
	// SSHKeyPath is the private key the control plane logs in with.
	SSHKeyPath string
	// HostKey is the server's SSH host key (authorized_keys format), pinned
	// on first contact; empty until then.
	HostKey             string
	AgentTokenPath      string
	MetricsPasswordPath string
	Status              ServerStatus
	// StatusReason says why a server is Broken (the failed step and its
	// error).
	StatusReason string
	Specs        Specs
	// ProvisionRun counts provisioning runs; steps belong to one run.
	ProvisionRun int
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// StepStatus is a provisioning step's state.
type StepStatus string

// Step states.
const (
	StepRunning StepStatus = "Running"
	StepSuccess StepStatus = "Success"
	StepFailure StepStatus = "Failure"
	// StepSkipped did not run because an earlier step failed.
	StepSkipped StepStatus = "Skipped"
)

func (st StepStatus) valid() bool {
	switch st {
	case StepRunning, StepSuccess, StepFailure, StepSkipped:
		return true
	}
	return false
}

// Step is one recorded provisioning step of a server's run, keyed by name
// within the run; Position orders a run's steps.
type Step struct {
	Run      int // set by the store: the server's current run
	Position int
	Name     string
	Status   StepStatus
	Command  string
	// OutputTail is the end of what the step printed.
	OutputTail string
	// ExitStatus is nil when the step ran no command or did not exit.
	ExitStatus *int
	Duration   time.Duration
	// Changed says whether the step changed anything on the server.
	Changed   bool
	StartedAt time.Time
	EndedAt   time.Time
}

const serverColumns = `s.id, s.name, s.address, s.port, s.ssh_user, s.ssh_key_path, s.host_key,
	s.agent_token_path, s.metrics_password_path, s.status, s.status_reason, s.specs,
	s.provision_run, s.created_at, s.updated_at`

func scanServer(row interface{ Scan(...any) error }) (Server, error) {
	var sv Server
	var specs string
	var created, updated int64
	err := row.Scan(&sv.ID, &sv.Name, &sv.Address, &sv.Port, &sv.SSHUser, &sv.SSHKeyPath, &sv.HostKey,
		&sv.AgentTokenPath, &sv.MetricsPasswordPath, &sv.Status, &sv.StatusReason, &specs,
		&sv.ProvisionRun, &created, &updated)
	if err != nil {
		return Server{}, err
	}
	if err := json.Unmarshal([]byte(specs), &sv.Specs); err != nil {
		return Server{}, fmt.Errorf("server %s specs: %w", sv.Name, err)
	}
	sv.CreatedAt, sv.UpdatedAt = fromMS(created), fromMS(updated)
	return sv, nil
}

// CreateServer adds a server, Pending unless sv.Status says otherwise.
// A taken name is ErrConflict.
func (s *Store) CreateServer(ctx context.Context, sv Server) (Server, error) {
	if sv.Status == "" {
		sv.Status = ServerPending
	}
	var problems []error
	if sv.Name == "" {
		problems = append(problems, errors.New("name is empty"))
	}
	if sv.Address == "" {
		problems = append(problems, errors.New("address is empty"))
	}
	if sv.Port <= 0 || sv.Port > 65535 {
		problems = append(problems, fmt.Errorf("port %d out of range", sv.Port))
	}
	if sv.SSHUser == "" {
		problems = append(problems, errors.New("ssh user is empty"))
	}
	if !sv.Status.valid() {
		problems = append(problems, fmt.Errorf("unknown status %q", sv.Status))
	}
	if len(problems) > 0 {
		return Server{}, fmt.Errorf("create server %q: %w: %w", sv.Name, ErrInvalid, errors.Join(problems...))
	}
	specs, err := json.Marshal(sv.Specs)
	if err != nil {
		return Server{}, fmt.Errorf("create server %q: %w", sv.Name, err)
	}
	sv.ID = newID("srv")
	now := s.nowMS()
	_, err = s.exec(ctx, `INSERT INTO servers (id, name, address, port, ssh_user, ssh_key_path, host_key,
		agent_token_path, metrics_password_path, status, status_reason, specs, provision_run, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
		sv.ID, sv.Name, sv.Address, sv.Port, sv.SSHUser, sv.SSHKeyPath, sv.HostKey,
		sv.AgentTokenPath, sv.MetricsPasswordPath, string(sv.Status), sv.StatusReason, string(specs), now, now)
	if err != nil {
		return Server{}, fmt.Errorf("create server %q: %w", sv.Name, err)
	}
	return s.GetServer(ctx, sv.Name)
}

// GetServer returns the server by name.
func (s *Store) GetServer(ctx context.Context, name string) (Server, error) {
	sv, err := scanServer(s.queryRow(ctx, `SELECT `+serverColumns+` FROM servers s WHERE s.name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Server{}, fmt.Errorf("server %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Server{}, fmt.Errorf("get server %q: %w", name, err)
	}
	return sv, nil
}

// ListServers returns every server, by name.
func (s *Store) ListServers(ctx context.Context) ([]Server, error) {
	rows, err := s.query(ctx, `SELECT `+serverColumns+` FROM servers s ORDER BY s.name`)
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	defer rows.Close()
	var out []Server
	for rows.Next() {
		sv, err := scanServer(rows)
		if err != nil {
			return nil, fmt.Errorf("list servers: %w", err)
		}
		out = append(out, sv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	return out, nil
}

// UpdateServerStatus sets a server's status and reason and, when step is
// not nil, records that step, in one transaction: a Broken server always
// has its failed step. Entering Provisioning from another status starts a
// new run, to which the run's steps then belong.
func (s *Store) UpdateServerStatus(ctx context.Context, name string, status ServerStatus, reason string, step *Step) (Server, error) {
	if !status.valid() {
		return Server{}, fmt.Errorf("update server %q: %w: unknown status %q", name, ErrInvalid, status)
	}
	if step != nil {
		if err := checkStep(*step); err != nil {
			return Server{}, fmt.Errorf("update server %q: %w", name, err)
		}
	}
	var out Server
	err := s.Tx(ctx, func(tx *Store) error {
		sv, err := tx.GetServer(ctx, name)
		if err != nil {
			return err
		}
		run := sv.ProvisionRun
		if status == ServerProvisioning && sv.Status != ServerProvisioning {
			run++
		}
		if _, err := tx.exec(ctx, `UPDATE servers SET status = ?, status_reason = ?, provision_run = ?, updated_at = ? WHERE id = ?`,
			string(status), reason, run, tx.nowMS(), sv.ID); err != nil {
			return fmt.Errorf("update server %q: %w", name, err)
		}
		if step != nil {
			if err := tx.upsertStep(ctx, sv.ID, run, *step); err != nil {
				return fmt.Errorf("update server %q: %w", name, err)
			}
		}
		out, err = tx.GetServer(ctx, name)
		return err
	})
	return out, err
}

// PinHostKey records the server's host key on first contact. The same key
// again is fine; another key is ErrConflict and changes nothing.
func (s *Store) PinHostKey(ctx context.Context, name, hostKey string) error {
	if hostKey == "" {
		return fmt.Errorf("pin host key of %q: %w: empty key", name, ErrInvalid)
	}
	return s.Tx(ctx, func(tx *Store) error {
		sv, err := tx.GetServer(ctx, name)
		if err != nil {
			return err
		}
		switch sv.HostKey {
		case hostKey:
			return nil
		case "":
			_, err := tx.exec(ctx, `UPDATE servers SET host_key = ?, updated_at = ? WHERE id = ?`, hostKey, tx.nowMS(), sv.ID)
			if err != nil {
				return fmt.Errorf("pin host key of %q: %w", name, err)
			}
			return nil
		default:
			return fmt.Errorf("host key of %q changed since it was pinned: %w", name, ErrConflict)
		}
	})
}

// SetServerSpecs records what was seen of the server's machine.
func (s *Store) SetServerSpecs(ctx context.Context, name string, specs Specs) error {
	b, err := json.Marshal(specs)
	if err != nil {
		return fmt.Errorf("set specs of %q: %w", name, err)
	}
	res, err := s.exec(ctx, `UPDATE servers SET specs = ?, updated_at = ? WHERE name = ?`, string(b), s.nowMS(), name)
	if err != nil {
		return fmt.Errorf("set specs of %q: %w", name, err)
	}
	if err := affected(res); err != nil {
		return fmt.Errorf("server %q: %w", name, err)
	}
	return nil
}

func checkStep(st Step) error {
	var problems []error
	if st.Name == "" {
		problems = append(problems, errors.New("step name is empty"))
	}
	if !st.Status.valid() {
		problems = append(problems, fmt.Errorf("step %q: unknown status %q", st.Name, st.Status))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(problems...))
	}
	return nil
}

// RecordStep records a step of the server's current run: a new one, or the
// same step again (by name) as it ends. The store sets step.Run.
func (s *Store) RecordStep(ctx context.Context, server string, step Step) error {
	if err := checkStep(step); err != nil {
		return fmt.Errorf("record step of %q: %w", server, err)
	}
	return s.Tx(ctx, func(tx *Store) error {
		sv, err := tx.GetServer(ctx, server)
		if err != nil {
			return err
		}
		if err := tx.upsertStep(ctx, sv.ID, sv.ProvisionRun, step); err != nil {
			return fmt.Errorf("record step of %q: %w", server, err)
		}
		return nil
	})
}

func (s *Store) upsertStep(ctx context.Context, serverID string, run int, st Step) error {
	var exit any
	if st.ExitStatus != nil {
		exit = *st.ExitStatus
	}
	_, err := s.exec(ctx, `INSERT INTO provision_steps (server_id, run, position, name, status, command, output_tail,
		exit_status, duration_ms, changed, started_at, ended_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (server_id, run, name) DO UPDATE SET position = excluded.position, status = excluded.status,
		command = excluded.command, output_tail = excluded.output_tail, exit_status = excluded.exit_status,
		duration_ms = excluded.duration_ms, changed = excluded.changed, started_at = excluded.started_at,
		ended_at = excluded.ended_at`,
		serverID, run, st.Position, st.Name, string(st.Status), st.Command, st.OutputTail,
		exit, st.Duration.Milliseconds(), st.Changed, msOrNil(st.StartedAt), msOrNil(st.EndedAt))
	if err != nil {
		return fmt.Errorf("step %q: %w", st.Name, err)
	}
	return nil
}

// ListSteps returns the steps of one provisioning run of the server, in
// order; run 0 is the latest run.
func (s *Store) ListSteps(ctx context.Context, server string, run int) ([]Step, error) {
	sv, err := s.GetServer(ctx, server)
	if err != nil {
		return nil, err
	}
	if run == 0 {
		run = sv.ProvisionRun
	}
	rows, err := s.query(ctx, `SELECT run, position, name, status, command, output_tail, exit_status, duration_ms,
		changed, started_at, ended_at FROM provision_steps WHERE server_id = ? AND run = ? ORDER BY position, name`,
		sv.ID, run)
	if err != nil {
		return nil, fmt.Errorf("list steps of %q: %w", server, err)
	}
	defer rows.Close()
	var out []Step
	for rows.Next() {
		var st Step
		var exit sql.NullInt64
		var dur int64
		var started, ended sql.NullInt64
		if err := rows.Scan(&st.Run, &st.Position, &st.Name, &st.Status, &st.Command, &st.OutputTail, &exit, &dur,
			&st.Changed, &started, &ended); err != nil {
			return nil, fmt.Errorf("list steps of %q: %w", server, err)
		}
		if exit.Valid {
			code := int(exit.Int64)
			st.ExitStatus = &code
		}
		st.Duration = time.Duration(dur) * time.Millisecond
		st.StartedAt, st.EndedAt = fromNullMS(started), fromNullMS(ended)
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list steps of %q: %w", server, err)
	}
	return out, nil
}
