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

// Serve serves h on l behind the web configuration's basic auth and TLS
// (exporter-toolkit) until ctx ends, then shuts down within 5 seconds. An
// empty webConfig serves plain HTTP, for handlers that authenticate by
// themselves.
func Serve(ctx context.Context, l net.Listener, h http.Handler, webConfig string, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
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
