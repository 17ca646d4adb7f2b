// Command burner is the stand-in bench process used in Docker tests. It is
// built as a static binary and put in an image FROM scratch (see burnerimage).
//
//	burner idle      sleep until SIGTERM or SIGINT, then exit 0
//	burner burn      spin one CPU until killed
//	burner alloc     allocate and touch memory in a loop until killed (or OOM-killed)
//	burner exit N    exit at once with status N
//	burner tick FILE [--ignore-term] [--close-output] [--child]
//	                 append a line to FILE every 100 ms until SIGTERM or SIGINT;
//	                 --ignore-term ignores SIGTERM (only SIGKILL ends it),
//	                 --close-output closes stdout and stderr first, --child
//	                 also starts a copy of itself ticking FILE.child
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = "usage: burner idle | burn | alloc | exit N | tick FILE [--ignore-term] [--close-output] [--child]"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	switch args[0] {
	case "idle":
		fmt.Fprintln(stdout, "burner: idle")
		<-ctx.Done()
		return 0
	case "burn":
		fmt.Fprintln(stdout, "burner: burning one CPU")
		burn(ctx)
		return 0
	case "alloc":
		fmt.Fprintln(stdout, "burner: allocating memory")
		alloc(ctx, stdout)
		return 0
	case "exit":
		if len(args) != 2 {
			fmt.Fprintln(stderr, usage)
			return 2
		}
		n, err := strconv.Atoi(args[1])
		if err != nil || n < 0 || n > 255 {
			fmt.Fprintf(stderr, "burner: exit status %q is not an integer in 0..255\n", args[1])
			return 2
		}
		return n
	case "tick":
		return tick(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "burner: unknown mode %q\n%s\n", args[0], usage)
		return 2
	}
}

// burn spins until ctx is done, checking it only every few million iterations
// so the loop stays CPU-bound.
func burn(ctx context.Context) {
	x := uint64(1)
	for {
		for i := 0; i < 1<<22; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		if ctx.Err() != nil {
			if x == 0 { // keep x alive so the loop is not optimised away
				fmt.Println(x)
			}
			return
		}
	}
}

// alloc grows a heap of 4 MiB chunks and writes to every page so the memory is
// really charged to the cgroup; it never frees, so a memory limit ends in an
// OOM kill.
func alloc(ctx context.Context, stdout io.Writer) {
	const chunk = 4 << 20
	var held [][]byte
	for ctx.Err() == nil {
		b := make([]byte, chunk)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		held = append(held, b)
		if len(held)%16 == 0 {
			fmt.Fprintf(stdout, "burner: holding %d MiB\n", len(held)*chunk>>20)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tick stands for a long bench command (a backup writing its files): it
// appends to a file every 100 ms, so a test can tell whether it still runs.
func tick(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	file := args[0]
	var ignoreTerm, closeOutput, child bool
	for _, a := range args[1:] {
		switch a {
		case "--ignore-term":
			ignoreTerm = true
		case "--close-output":
			closeOutput = true
		case "--child":
			child = true
		default:
			fmt.Fprintf(stderr, "burner: tick: unknown option %q\n%s\n", a, usage)
			return 2
		}
	}
	if ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintf(stderr, "burner: tick: %v\n", err)
		return 1
	}
	defer f.Close()
	if child {
		childArgs := []string{"tick", file + ".child"}
		if ignoreTerm {
			childArgs = append(childArgs, "--ignore-term")
		}
		cmd := exec.Command("/proc/self/exe", childArgs...)
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(stderr, "burner: tick: start child: %v\n", err)
			return 1
		}
	}
	fmt.Fprintf(stdout, "burner: ticking into %s\n", file)
	if closeOutput {
		os.Stdout.Close()
		os.Stderr.Close()
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return 0
		case <-t.C:
			fmt.Fprintf(f, "tick %d\n", n)
		}
	}
}
