package webauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
)

// Prepare makes sure the web configuration at path exists (see Ensure) and
// is valid, so a bad file stops a server at start, not at its first request.
func Prepare(path string, explicit bool, logger *slog.Logger) error {
	if err := Ensure(path, explicit, logger); err != nil {
		return err
	}
	if err := web.Validate(path); err != nil {
		return fmt.Errorf("web config %s: %w", path, err)
	}
	return nil
}

// Limits bound what one connection may cost a server, so that idle or slow
// clients (authenticated or not: authentication runs after the headers are
// read) cannot hold connections and memory forever.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's headers; it is also how
	// long a new connection may stay silent before its first request.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout time.Duration
	// WriteTimeout bounds the time from the end of the request's headers to
	// the end of the answer: the handler's work plus writing the body.
	WriteTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection waits for its next
	// request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers; more is answered 431.
	MaxHeaderBytes int
}

// DefaultLimits fit the agent's servers:
//   - requests are small (GETs, JSON job requests of at most 1 MiB), so 10 s
//     for the headers and 30 s for the whole request are plenty even on a
//     slow link;
//   - the longest answers are a /metrics scrape (collectors run up to
//     collector_timeout, 10 s by default, plus the promhttp handler's 5 s of
//     slack) and a GET /jobs list of several MiB: 2 minutes covers both with
//     room for a slow link, and is still finite;
//   - 2 minutes idle is longer than usual scrape and poll intervals (15 s to
//     1 m), so Prometheus and the control plane keep reusing their connections;
//   - headers are a few hundred bytes (basic auth or a bearer token, a job id
//     and a callback URL): 16 KiB is generous.
func DefaultLimits() Limits {
	return Limits{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
}

// Serve is ServeWith under DefaultLimits.
func Serve(ctx context.Context, l net.Listener, h http.Handler, webConfig string, logger *slog.Logger) error {
	return ServeWith(ctx, l, h, webConfig, DefaultLimits(), logger)
}

// ServeWith serves h on l behind the web configuration's basic auth and TLS
// (exporter-toolkit) until ctx ends, then shuts down within 5 seconds. An
// empty webConfig serves plain HTTP, for handlers that authenticate by
// themselves. Zero fields of limits take DefaultLimits' values.
func ServeWith(ctx context.Context, l net.Listener, h http.Handler, webConfig string, limits Limits, logger *slog.Logger) error {
	limits = limits.orDefaults()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: limits.ReadHeaderTimeout,
		ReadTimeout:       limits.ReadTimeout,
		WriteTimeout:      limits.WriteTimeout,
		IdleTimeout:       limits.IdleTimeout,
		MaxHeaderBytes:    limits.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	flags := &web.FlagConfig{WebListenAddresses: &[]string{l.Addr().String()}, WebConfigFile: &webConfig}
	errc := make(chan error, 1)
	go func() { errc <- web.Serve(l, srv, flags, logger) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down %s: %w", l.Addr(), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", l.Addr(), err)
	}
	return nil
}

func (l Limits) orDefaults() Limits {
	d := DefaultLimits()
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = d.ReadTimeout
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = d.WriteTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = d.IdleTimeout
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	return l
}
