package agentclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/names"
)

// Defaults of Options.
const (
	DefaultRequestTimeout   = 30 * time.Second
	DefaultMaxAttempts      = 5
	DefaultMinBackoff       = 250 * time.Millisecond
	DefaultMaxBackoff       = 10 * time.Second
	DefaultMaxRetryTime     = 2 * time.Minute
	DefaultFailureThreshold = 5
	DefaultCoolDown         = 30 * time.Second
	DefaultCoolDownJitter   = 0.2
)

// MaxPollBatch is how many job ids the agent answers in one GET /jobs/<ids>.
const MaxPollBatch = 100

// Bounds on what is read of an agent's answer: a POST answers {"job": id},
// a poll up to 100 jobs with their steps' output tails (64 KiB each).
const (
	maxAnswer     = 1 << 20
	maxPollAnswer = 64 << 20
)

// ErrCircuitOpen: the server's circuit breaker is open (its agent failed
// FailureThreshold requests in a row, or the ping after the cool-down
// failed); the call was not sent. Try again later.
var ErrCircuitOpen = errors.New("circuit open: agent failing, not called")

// RejectedError is a 4xx answer: the agent refused the request and will
// refuse it again, so it is never retried. Message is the agent's own
// ({"error": "..."}), the reason a delivery failed.
type RejectedError struct {
	Status  int
	Message string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("agent refused it (%d %s): %s", e.Status, http.StatusText(e.Status), e.Message)
}

// NotFoundError: jobs the agent does not know (Poll); the others were read.
type NotFoundError struct {
	IDs []string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("%d job(s) unknown to the agent: %s", len(e.IDs), clip(strings.Join(e.IDs, ", "), 300))
}

// Options configure a Client.
type Options struct {
	// Server names the server in errors, logs and metrics.
	Server string
	// BaseURL is the agent API's address, http(s)://host:port[/prefix],
	// without userinfo.
	BaseURL string
	// Token is the agent's API bearer token.
	Token string
	// TLSConfig, when set, is used (cloned) for https; CACertPEM, when set,
	// is the only CA trusted for the agent's certificate.
	TLSConfig *tls.Config
	CACertPEM []byte
	// RequestTimeout bounds one attempt (DefaultRequestTimeout when zero).
	RequestTimeout time.Duration
	Retry          Retry
	Breaker        BreakerOptions
	// Clock drives the breaker's cool-down (the system clock when nil).
	Clock  Clock
	Logger *slog.Logger
}

// Retry says how Deliver retries connection errors, timeouts and 5xx:
// up to MaxAttempts attempts within MaxTime, waiting a random time in
// [0, min(MaxBackoff, MinBackoff*2^n)] before retry n+1 (full jitter).
// Zero fields take the defaults; MaxAttempts 1 never retries.
type Retry struct {
	MaxAttempts int
	MinBackoff  time.Duration
	MaxBackoff  time.Duration
	MaxTime     time.Duration
}

// Client talks to one server's agent. It is safe for concurrent use.
type Client struct {
	server  string
	base    *url.URL
	token   string
	http    *http.Client
	timeout time.Duration
	retry   Retry
	breaker *breaker
	logger  *slog.Logger
}

// New returns a client for the agent at opts.BaseURL. No request is made.
func New(opts Options) (*Client, error) {
	var problems []string
	if opts.Server == "" {
		problems = append(problems, "server: empty")
	}
	base, err := url.Parse(opts.BaseURL)
	switch {
	case err != nil:
		problems = append(problems, "base URL: not a URL")
	case base.User != nil:
		problems = append(problems, "base URL: must not carry userinfo (the token goes in Options.Token)")
	case base.Scheme != "http" && base.Scheme != "https", base.Host == "":
		problems = append(problems, fmt.Sprintf("base URL %q: want http(s)://host:port", clip(base.Redacted(), 200)))
	case base.RawQuery != "" || base.Fragment != "":
		problems = append(problems, fmt.Sprintf("base URL %q: no query or fragment", clip(base.Redacted(), 200)))
	}
	if opts.Token == "" {
		problems = append(problems, "token: empty")
	}
	var tlsConfig *tls.Config
	if opts.TLSConfig != nil {
		tlsConfig = opts.TLSConfig.Clone()
	}
	if len(opts.CACertPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(opts.CACertPEM) {
			problems = append(problems, "CA certificate: no PEM certificate in it")
		}
		if tlsConfig == nil {
			tlsConfig = &tls.Config{}
		}
		tlsConfig.RootCAs = pool
	}
	if opts.Retry.MaxAttempts < 0 {
		problems = append(problems, "retry.max_attempts: negative")
	}
	if opts.Breaker.FailureThreshold < 0 {
		problems = append(problems, "breaker.failure_threshold: negative")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("agent client for server %q: %s", opts.Server, strings.Join(problems, "; "))
	}
	if tlsConfig != nil && tlsConfig.MinVersion == 0 {
		tlsConfig.MinVersion = tls.VersionTLS12
	}
	base.Path = strings.TrimSuffix(base.Path, "/")
	r := opts.Retry
	r.MaxAttempts = orDefault(r.MaxAttempts, DefaultMaxAttempts)
	r.MinBackoff = orDefault(r.MinBackoff, DefaultMinBackoff)
	r.MaxBackoff = orDefault(r.MaxBackoff, DefaultMaxBackoff)
	r.MaxTime = orDefault(r.MaxTime, DefaultMaxRetryTime)
	timeout := orDefault(opts.RequestTimeout, DefaultRequestTimeout)
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("server", opts.Server)
	clock := opts.Clock
	if clock == nil {
		clock = systemClock{}
	}
	transport := &http.Transport{
		Proxy:                 nil, // an agent is reached directly, never through an environment's proxy
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
		ForceAttemptHTTP2:     tlsConfig != nil,
	}
	return &Client{
		server: opts.Server,
		base:   base,
		token:  opts.Token,
		http: &http.Client{
			Transport: transport,
			// A redirect is not followed: it would take the token to an
			// address nobody configured.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout: timeout,
		retry:   r,
		breaker: newBreaker(opts.Breaker, clock, logger),
		logger:  logger,
	}, nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Server is the name the client was made with.
func (c *Client) Server() string { return c.server }

// State is the circuit breaker's state.
func (c *Client) State() State { return c.breaker.State() }

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Ping asks the agent for GET /ping, once (no retry). While the circuit is
// open it fails with ErrCircuitOpen without a request; after the cool-down
// it is the ping that closes the circuit.
func (c *Client) Ping(ctx context.Context) error {
	if _, err := c.do(ctx, call{method: http.MethodGet, path: "/ping", attempts: 1, max: maxAnswer, ping: true}); err != nil {
		return fmt.Errorf("ping server %s: %w", c.server, err)
	}
	return nil
}

// Delivery is a job for the agent.
type Delivery struct {
	// JobID is the control plane's job id, sent as X-Agent-Job-Id: the same
	// id delivered again is the same job on the agent.
	JobID string
	// Method is POST when empty; Path an agent route (/benches/b1/sites).
	Method string
	Path   string
	// Body is the JSON request (nil for routes that take none).
	Body []byte
	// CallbackURL, when set, is where the agent POSTs the ended job.
	CallbackURL string
}

// Deliver sends d, retrying connection errors, timeouts and 5xx answers,
// and returns the agent's job id (d.JobID). A 4xx is a *RejectedError (the
// job's delivery failed, for good); ErrCircuitOpen or any other error means
// it may not have arrived: deliver it again later, which is safe.
func (c *Client) Deliver(ctx context.Context, d Delivery) (string, error) {
	if err := checkDelivery(&d); err != nil {
		return "", fmt.Errorf("deliver job to server %s: %w", c.server, err)
	}
	header := http.Header{agentapi.JobIDHeader: {d.JobID}}
	if d.CallbackURL != "" {
		header.Set(agentapi.CallbackHeader, d.CallbackURL)
	}
	resp, err := c.do(ctx, call{method: d.Method, path: d.Path, body: d.Body, header: header,
		attempts: c.retry.MaxAttempts, max: maxAnswer})
	if err != nil {
		return "", fmt.Errorf("deliver job %s to server %s: %w", d.JobID, c.server, err)
	}
	var created agentapi.JobCreated
	if err := json.Unmarshal(resp, &created); err != nil {
		return "", fmt.Errorf("deliver job %s to server %s: agent's answer is not {\"job\": id}: %w", d.JobID, c.server, err)
	}
	if created.Job != d.JobID {
		return "", fmt.Errorf("deliver job %s to server %s: agent answered job %q, not ours", d.JobID, c.server, clip(created.Job, 140))
	}
	return created.Job, nil
}

func checkDelivery(d *Delivery) error {
	if err := names.JobID(d.JobID); err != nil {
		return err
	}
	if d.Method == "" {
		d.Method = http.MethodPost
	}
	switch d.Method {
	case http.MethodPost, http.MethodPut, http.MethodDelete:
	default:
		return fmt.Errorf("method %q: a delivery is a POST, PUT or DELETE", clip(d.Method, 20))
	}
	if !strings.HasPrefix(d.Path, "/") || strings.ContainsAny(d.Path, "?#\\\x00") || strings.Contains(d.Path, "..") || len(d.Path) > 1024 {
		return fmt.Errorf("path %q: want an agent route such as /benches/<bench>/sites", clip(d.Path, 120))
	}
	if len(d.Body) > 0 && !json.Valid(d.Body) {
		return errors.New("body: not JSON")
	}
	return nil
}

// Poll reads the jobs with the ids, MaxPollBatch per request, once each (the
// next poll is the retry). Ids the agent does not know come back in a
// *NotFoundError beside the jobs read; on any error, jobs holds what was read.
func (c *Client) Poll(ctx context.Context, ids []string) ([]agentapi.Job, error) {
	seen := make(map[string]bool, len(ids))
	unique := make([]string, 0, len(ids))
	for _, id := range ids {
		if err := names.JobID(id); err != nil {
			return nil, fmt.Errorf("poll server %s: %w", c.server, err)
		}
		if !seen[id] {
			seen[id] = true
			unique = append(unique, id)
		}
	}
	var (
		out     []agentapi.Job
		missing []string
	)
	for start := 0; start < len(unique); start += MaxPollBatch {
		batch := unique[start:min(start+MaxPollBatch, len(unique))]
		jobs, gone, err := c.pollBatch(ctx, batch)
		out = append(out, jobs...)
		missing = append(missing, gone...)
		if err != nil {
			return out, fmt.Errorf("poll server %s: %w", c.server, err)
		}
	}
	if len(missing) > 0 {
		return out, fmt.Errorf("poll server %s: %w", c.server, &NotFoundError{IDs: missing})
	}
	return out, nil
}

// pollBatch reads one batch. The agent answers 404 for the whole batch when
// one id is unknown (naming it only in prose), so such a batch is halved
// until the unknown ids are found: one request when all are known.
func (c *Client) pollBatch(ctx context.Context, ids []string) (jobs []agentapi.Job, missing []string, err error) {
	resp, err := c.do(ctx, call{method: http.MethodGet, path: "/jobs/" + strings.Join(ids, ","), attempts: 1, max: maxPollAnswer})
	if rej := (*RejectedError)(nil); errors.As(err, &rej) && rej.Status == http.StatusNotFound {
		if len(ids) == 1 {
			return nil, ids, nil
		}
		half := len(ids) / 2
		jobs, missing, err = c.pollBatch(ctx, ids[:half])
		if err != nil {
			return jobs, missing, err
		}
		more, gone, err := c.pollBatch(ctx, ids[half:])
		return append(jobs, more...), append(missing, gone...), err
	}
	if err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(resp, &jobs); err != nil {
		return nil, nil, fmt.Errorf("agent's answer to GET /jobs is not a list of jobs: %w", err)
	}
	return jobs, nil, nil
}

// call is one API call: its request and how it is retried.
type call struct {
	method, path string
	body         []byte
	header       http.Header
	attempts     int
	max          int64 // bytes read of the answer
	ping         bool
}

// do makes c, through the breaker, retrying as c.attempts allows; it returns
// a 2xx answer's body, a *RejectedError for a 4xx, or why it gave up.
func (c *Client) do(ctx context.Context, cl call) ([]byte, error) {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		probed, err := c.admit(ctx)
		if err != nil {
			return nil, err
		}
		if probed && cl.ping {
			return []byte(`{"message":"pong"}`), nil // the breaker's probe was this ping
		}
		body, err := c.once(ctx, cl)
		if ctx.Err() != nil {
			// The caller gave up: says nothing about the agent.
			return nil, fmt.Errorf("%s %s: %w", cl.method, c.urlFor(cl.path), context.Cause(ctx))
		}
		var rej *RejectedError
		failed := err != nil && !errors.As(err, &rej) && !errors.Is(err, errAnswer)
		c.breaker.record(!failed)
		if !failed {
			return body, err
		}
		if attempt >= cl.attempts {
			if attempt > 1 {
				return nil, fmt.Errorf("gave up after %d attempts: %w", attempt, err)
			}
			return nil, err
		}
		wait := backoff(c.retry, attempt)
		if time.Since(start)+wait > c.retry.MaxTime {
			return nil, fmt.Errorf("gave up after %d attempts in %s: %w", attempt, time.Since(start).Round(time.Millisecond), err)
		}
		c.logger.Debug("agent request failed; will retry", "method", cl.method, "path", cl.path, "attempt", attempt, "in", wait, "err", err)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("%s %s: %w (after %d attempts, the last: %v)", cl.method, c.urlFor(cl.path), context.Cause(ctx), attempt, err)
		case <-timer.C:
		}
	}
}

// backoff is the wait before attempt n+1: full jitter over an exponential cap.
func backoff(r Retry, n int) time.Duration {
	ceiling := r.MaxBackoff
	if n-1 < 32 {
		ceiling = min(r.MinBackoff<<(n-1), r.MaxBackoff)
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling + 1)
}

// admit asks the breaker; after a cool-down the first caller pings the agent
// (probed), and the circuit closes when it answers.
func (c *Client) admit(ctx context.Context) (probed bool, err error) {
	switch c.breaker.allow() {
	case pass:
		return false, nil
	case deny:
		return false, fmt.Errorf("server %s: %w", c.server, ErrCircuitOpen)
	}
	_, err = c.once(ctx, call{method: http.MethodGet, path: "/ping", max: maxAnswer})
	if ctx.Err() != nil {
		c.breaker.probeAbandoned()
		return false, fmt.Errorf("ping server %s: %w", c.server, context.Cause(ctx))
	}
	c.breaker.probeDone(err == nil)
	if err != nil {
		return false, fmt.Errorf("server %s: %w (the ping after the cool-down failed: %v)", c.server, ErrCircuitOpen, err)
	}
	return true, nil
}

// errAnswer marks an answer that came but cannot be used (too large): the
// agent is up, so it is not retried nor counted against the breaker.
var errAnswer = errors.New("unusable answer")

// once makes one attempt. Its errors never hold the token: the token is only
// in a header, and the URL has no userinfo.
func (c *Client) once(ctx context.Context, cl call) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	target := c.urlFor(cl.path)
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, target, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", cl.method, target, err)
	}
	maps(req.Header, cl.header)
	if cl.path != "/ping" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "hybrid-controlplane")
	resp, err := c.http.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			err = fmt.Errorf("no answer within %s: %w", c.timeout, err)
		}
		return nil, fmt.Errorf("%s %s: %w", cl.method, target, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, cl.max+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", cl.method, target, err)
	}
	code := resp.StatusCode
	switch {
	case code >= 200 && code <= 299:
		if int64(len(data)) > cl.max {
			return nil, fmt.Errorf("%s %s: answer larger than %d bytes: %w", cl.method, target, cl.max, errAnswer)
		}
		return data, nil
	case code >= 400 && code <= 499:
		return nil, &RejectedError{Status: code, Message: c.message(data)}
	case code >= 300 && code <= 399:
		// A proxy or a wrong base URL, not the agent: retried, and counted,
		// until the configuration is fixed.
		return nil, fmt.Errorf("%s %s: answered %s, a redirect, which is not followed", cl.method, target, resp.Status)
	default:
		return nil, fmt.Errorf("%s %s: agent answered %s: %s", cl.method, target, resp.Status, c.message(data))
	}
}

func maps(dst, src http.Header) {
	for k, v := range src {
		dst[k] = v
	}
}

// urlFor is the URL of path on the agent; the base has no userinfo (New
// refuses it), so it may go in errors as it is.
func (c *Client) urlFor(path string) string {
	u := *c.base
	u.Path = c.base.Path + path
	return u.String()
}

// message is the agent's error message from an answer's body: {"error": ...}
// or the start of the text, never the token (should an agent echo it).
func (c *Client) message(data []byte) string {
	var e agentapi.Error
	msg := strings.TrimSpace(string(data))
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	msg = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, msg)
	if c.token != "" {
		msg = strings.ReplaceAll(msg, c.token, "[REDACTED]")
	}
	if msg == "" {
		msg = "(no message)"
	}
	return clip(msg, 1000)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}
