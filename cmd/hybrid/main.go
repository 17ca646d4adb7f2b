// Command hybrid is the control core: `hybrid monitor` scrapes the agents,
// evaluates the rules and delivers alerts; `hybrid rules check|test` checks
// rule files and runs their unit tests; `hybrid alertmanager-config` writes an
// alertmanager.yml from the monitor's configuration.
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

	"github.com/hybridsuite/hybrid/alerting"
	"github.com/hybridsuite/hybrid/rules"
	"github.com/hybridsuite/hybrid/rules/evaluator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: hybrid <command> [flags]

commands:
  monitor               scrape agents, probe sites, evaluate rules, deliver alerts
  rules check FILE...   check rule files (file, line and reason for each problem)
  rules test FILE...    run rule unit tests (promtool's format) with our engine
  alertmanager-config   write alertmanager.yml from the monitor's configuration
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "monitor":
		return monitor(ctx, args[1:], stderr)
	case "rules":
		return rulesCmd(ctx, args[1:], stdout, stderr)
	case "alertmanager-config":
		return alertmanagerConfig(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "hybrid: unknown command %q\n%s", args[0], usage)
		return 2
	}
}

// monitorFlags registers the flags every command on the monitor's
// configuration takes; the returned func loads defaults -> file -> flags and
// validates, after fs.Parse. A code >= 0 means: exit with it.
func monitorFlags(fs *flag.FlagSet) func(args []string, stderr io.Writer) (evaluator.Config, int) {
	configFile := fs.String("config", "", "YAML configuration file (optional; embedded defaults otherwise)")
	dataDir := fs.String("data-dir", "", "data folder: TSDB, rules, web config (overrides data_dir)")
	listen := fs.String("web.listen-address", "", "address of /metrics (overrides web.listen_address)")
	return func(args []string, stderr io.Writer) (evaluator.Config, int) {
		cfg := evaluator.DefaultConfig()
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return cfg, 0
			}
			return cfg, 2
		}
		if *configFile != "" {
			var err error
			if cfg, err = evaluator.LoadConfig(*configFile); err != nil {
				fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
				return cfg, 2
			}
		}
		if *dataDir != "" {
			cfg.DataDir = *dataDir
		}
		if *listen != "" {
			cfg.Web.ListenAddress = *listen
		}
		if err := cfg.Validate(); err != nil {
			fmt.Fprintf(stderr, "%s: invalid configuration:\n%v\n", fs.Name(), err)
			return cfg, 2
		}
		return cfg, -1
	}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("hybrid "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func monitor(ctx context.Context, args []string, stderr io.Writer) int {
	load := monitorFlags(newFlagSet("monitor", stderr))
	cfg, code := load(args, stderr)
	if code >= 0 {
		return code
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := evaluator.Run(ctx, cfg, logger); err != nil {
		logger.Error("hybrid monitor stopped", "err", err)
		return 1
	}
	return 0
}

func alertmanagerConfig(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("alertmanager-config", stderr)
	out := fs.String("out", "", "write alertmanager.yml here (mode 0600) instead of standard output")
	load := monitorFlags(fs)
	cfg, code := load(args, stderr)
	if code >= 0 {
		return code
	}
	if *out != "" {
		if err := alerting.WriteConfig(*out, cfg.Alerting.AlertmanagerConfig); err != nil {
			fmt.Fprintf(stderr, "hybrid alertmanager-config: %v\n", err)
			return 1
		}
		return 0
	}
	data, err := alerting.GenerateConfig(cfg.Alerting.AlertmanagerConfig)
	if err != nil {
		fmt.Fprintf(stderr, "hybrid alertmanager-config: %v\n", err)
		return 1
	}
	stdout.Write(data)
	return 0
}

func rulesCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 || (args[0] != "check" && args[0] != "test") {
		fmt.Fprint(stderr, usage)
		return 2
	}
	files := args[1:]
	if args[0] == "check" {
		if err := rules.Check(files...); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%d rule files: ok\n", len(files))
		return 0
	}
	failed := false
	for _, f := range files {
		failures, err := rules.RunTestFile(ctx, f)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", f, err)
			failed = true
			continue
		}
		for _, fl := range failures {
			fmt.Fprintln(stderr, fl.String())
		}
		if len(failures) > 0 {
			failed = true
			continue
		}
		fmt.Fprintf(stdout, "%s: pass\n", f)
	}
	if failed {
		return 1
	}
	return 0
}
