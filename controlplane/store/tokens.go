package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Scope is what an API token may do.
type Scope string

// Token scopes.
const (
	ScopeAdmin Scope = "admin"
	ScopeRead  Scope = "read"
)

// APIToken is an API token as stored: its hash, never the token.
type APIToken struct {
	ID        string
	Name      string
	Scope     Scope
	CreatedAt time.Time
}

// tokenPrefix marks the control plane's API tokens (easy to spot in a leak
// scan).
const tokenPrefix = "hyb_"

func hashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// CreateAPIToken makes a token of the scope and returns it, the only time
// it is seen; the store keeps its SHA-256. A taken name is ErrConflict.
func (s *Store) CreateAPIToken(ctx context.Context, name string, scope Scope) (secret string, _ APIToken, _ error) {
	if name == "" {
		return "", APIToken{}, fmt.Errorf("create api token: %w: name is empty", ErrInvalid)
	}
	if scope != ScopeAdmin && scope != ScopeRead {
		return "", APIToken{}, fmt.Errorf("create api token %q: %w: unknown scope %q", name, ErrInvalid, scope)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", APIToken{}, fmt.Errorf("create api token %q: %w", name, err)
	}
	secret = tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	t := APIToken{ID: newID("tok"), Name: name, Scope: scope, CreatedAt: fromMS(s.nowMS())}
	if _, err := s.exec(ctx, `INSERT INTO api_tokens (id, name, token_hash, scope, created_at) VALUES (?, ?, ?, ?, ?)`,
		t.ID, t.Name, hashToken(secret), string(scope), t.CreatedAt.UnixMilli()); err != nil {
		return "", APIToken{}, fmt.Errorf("create api token %q: %w", name, err)
	}
	return secret, t, nil
}

// APITokenBySecret returns the token a caller presented; an unknown one is
// ErrNotFound. Tokens are 256 random bits, so looking their hash up by
// index leaks nothing worth timing.
func (s *Store) APITokenBySecret(ctx context.Context, secret string) (APIToken, error) {
	var t APIToken
	var created int64
	err := s.queryRow(ctx, `SELECT id, name, scope, created_at FROM api_tokens WHERE token_hash = ?`, hashToken(secret)).
		Scan(&t.ID, &t.Name, &t.Scope, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return APIToken{}, fmt.Errorf("api token: %w", ErrNotFound)
	}
	if err != nil {
		return APIToken{}, fmt.Errorf("look up api token: %w", err)
	}
	t.CreatedAt = fromMS(created)
	return t, nil
}

// ListAPITokens returns every token (without secrets), by name.
func (s *Store) ListAPITokens(ctx context.Context) ([]APIToken, error) {
	rows, err := s.query(ctx, `SELECT id, name, scope, created_at FROM api_tokens ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list api tokens: %w", err)
	}
	defer rows.Close()
	var out []APIToken
	for rows.Next() {
		var t APIToken
		var created int64
		if err := rows.Scan(&t.ID, &t.Name, &t.Scope, &created); err != nil {
			return nil, fmt.Errorf("list api tokens: %w", err)
		}
		t.CreatedAt = fromMS(created)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list api tokens: %w", err)
	}
	return out, nil
}

// DeleteAPIToken revokes a token by name.
func (s *Store) DeleteAPIToken(ctx context.Context, name string) error {
	res, err := s.exec(ctx, `DELETE FROM api_tokens WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("delete api token %q: %w", name, err)
	}
	if err := affected(res); err != nil {
		return fmt.Errorf("api token %q: %w", name, err)
	}
	return nil
}
