// Command bench is a stand-in for a Frappe bench, for tests on machines that
// cannot pull a frappe/erpnext image. It is built as a static binary and put
// in an image FROM scratch (see benchimage), and used the way the agent uses a
// real bench container: `bench serve` is the container's command and serves
// the bench's sites over HTTP, selected by Host header; `docker exec <ctr>
// bench ...` runs the site commands (new-site, migrate, backup, restore,
// set-maintenance-mode, drop-site) with Frappe's syntax.
//
// The bench folder is the working directory; sites live in its sites/
// folder. README.md lists the commands, their output and the test hooks.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	dir, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(stderr, "bench: find the bench folder: %v\n", err)
		return 1
	}
	b := &Bench{Dir: dir, Stdout: stdout, Stderr: stderr, Getenv: os.Getenv, Now: time.Now}
	return b.Run(ctx, args)
}
