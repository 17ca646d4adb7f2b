package agentclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// DefaultMaxCallbackBody is CallbackOptions.MaxBody when zero: a job with
// its steps' output tails (64 KiB each).
const DefaultMaxCallbackBody = 8 << 20

// ErrUnknownServer is what a SecretSource returns for a server it does not
// know; the callback is refused like a bad signature.
var ErrUnknownServer = errors.New("unknown server")

// SecretSource gives a server's callback secrets: the current one, and
// during a rotation the previous one too (any of them may sign).
type SecretSource interface {
	CallbackSecrets(ctx context.Context, server string) ([][]byte, error)
}

// CallbackOptions configure the callback handler; Secrets and Sink are
// required.
type CallbackOptions struct {
	Secrets SecretSource
	Sink    Updater
	// Tolerance of the signature's timestamp
	// (agentapi.DefaultSignatureTolerance when zero).
	Tolerance time.Duration
	// MaxBody refuses larger callbacks with 413 (DefaultMaxCallbackBody).
	MaxBody int64
	Clock   Clock
	Logger  *slog.Logger
}

type callbackHandler struct {
	opts CallbackOptions
}

// NewCallbackHandler serves the agents' callbacks: POST <prefix>/<server>
// (see CallbackURL) with an ended job, signed with the server's callback
// secret. A missing, wrong or expired signature, or an unknown server, is a
// 401; a body over MaxBody a 413; a signed job goes to the Sink (204, or 500
// when the Sink fails, so that the agent retries).
func NewCallbackHandler(opts CallbackOptions) (http.Handler, error) {
	if opts.Secrets == nil || opts.Sink == nil {
		return nil, errors.New("callback handler: secrets and sink are required")
	}
	opts.Tolerance = orDefault(opts.Tolerance, agentapi.DefaultSignatureTolerance)
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxCallbackBody
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &callbackHandler{opts: opts}, nil
}

// CallbackURL is the callback address for a server's jobs, given the
// address the handler is served under (https://cp.example.com/agent-callbacks).
func CallbackURL(base, server string) string {
	return strings.TrimSuffix(base, "/") + "/" + url.PathEscape(server)
}

func (h *callbackHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		callbackError(w, http.StatusMethodNotAllowed, "callbacks are POSTed")
		return
	}
	escaped := r.URL.EscapedPath()
	server, err := url.PathUnescape(escaped[strings.LastIndex(escaped, "/")+1:])
	if err != nil || server == "" {
		callbackError(w, http.StatusNotFound, "want POST .../<server>")
		return
	}
	logger := h.opts.Logger.With("server", server)
	signature := r.Header.Get(agentapi.SignatureHeader)
	if signature == "" {
		logger.Warn("callback refused", "why", agentapi.ErrSignatureMissing)
		callbackError(w, http.StatusUnauthorized, "unsigned")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBody))
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			logger.Warn("callback refused", "why", "body too large", "limit", h.opts.MaxBody)
			callbackError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", h.opts.MaxBody))
			return
		}
		callbackError(w, http.StatusBadRequest, "read body")
		return
	}
	secrets, err := h.opts.Secrets.CallbackSecrets(r.Context(), server)
	switch {
	case errors.Is(err, ErrUnknownServer), err == nil && len(secrets) == 0:
		logger.Warn("callback refused", "why", "unknown server or no callback secret")
		callbackError(w, http.StatusUnauthorized, "bad signature")
		return
	case err != nil:
		logger.Error("callback: look up the server's callback secret", "err", err)
		callbackError(w, http.StatusServiceUnavailable, "try again later")
		return
	}
	if err := h.verify(secrets, body, signature); err != nil {
		logger.Warn("callback refused", "why", err)
		callbackError(w, http.StatusUnauthorized, "bad signature")
		return
	}
	var job agentapi.Job
	if err := json.Unmarshal(body, &job); err != nil || job.ID == "" {
		logger.Warn("callback refused: signed, but not a job", "err", err)
		callbackError(w, http.StatusBadRequest, "body is not a job")
		return
	}
	if id := r.Header.Get(agentapi.JobIDHeader); id != "" && id != job.ID {
		callbackError(w, http.StatusBadRequest, agentapi.JobIDHeader+" is not the body's job")
		return
	}
	if err := h.opts.Sink.Update(r.Context(), server, []agentapi.Job{job}); err != nil {
		logger.Error("callback: update job", "job", job.ID, "err", err)
		callbackError(w, http.StatusInternalServerError, "not recorded; try again")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// verify accepts a signature by any of the secrets; an expired one is
// reported as such (only a genuine signature's age is).
func (h *callbackHandler) verify(secrets [][]byte, body []byte, header string) error {
	var first error
	for _, secret := range secrets {
		err := agentapi.VerifySignature(secret, body, header, h.opts.Clock.Now(), h.opts.Tolerance)
		if err == nil || errors.Is(err, agentapi.ErrSignatureExpired) {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}

func callbackError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(agentapi.Error{Error: msg})
}
