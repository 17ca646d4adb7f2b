// Command hybrid-agent runs on a customer's server: it serves the exporters'
// metrics (host, MariaDB, bench containers) to the control core.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/hybridsuite/hybrid/agent"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("hybrid-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "YAML configuration file (optional; embedded defaults otherwise)")
	root := fs.String("root", "", "server root folder (overrides the config's root)")
	listen := fs.String("web.listen-address", "", "address to serve /metrics on (overrides web.listen_address)")
	checkConfig := fs.Bool("check-config", false, "validate the configuration and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}

	cfg := agent.DefaultConfig()
	if *configFile != "" {
		var err error
		if cfg, err = agent.LoadConfig(*configFile); err != nil {
			fmt.Fprintf(stderr, "hybrid-agent: %v\n", err)
			return 2
		}
	}
	if *root != "" {
		cfg.Root = *root
	}
	if *listen != "" {
		cfg.Web.ListenAddress = *listen
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "hybrid-agent: invalid configuration:\n%v\n", err)
		return 2
	}
	if *checkConfig {
		fmt.Fprintln(stderr, "hybrid-agent: configuration ok")
		return 0
	}

	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // checked by Validate
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if n, err := releaseStartupPages(); err != nil {
		logger.Debug("release start-up pages", "err", err)
	} else {
		logger.Debug("released start-up pages", "bytes", n)
	}
	if err := agent.Run(ctx, cfg, logger); err != nil {
		logger.Error("hybrid-agent stopped", "err", err)
		return 1
	}
	return 0
}
