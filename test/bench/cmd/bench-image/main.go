// Command bench-image builds the stand-in bench image (test/bench) into the
// local Docker engine, unless the engine holds it already, and prints its tag.
// `make run` uses it so that a new user's first site has a bench image: no
// registry can be reached to pull a frappe/erpnext one.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/moby/moby/client"

	"github.com/hybridsuite/hybrid/test/bench/benchimage"
)

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-image: connect to the Docker engine:", err)
		return 1
	}
	defer cli.Close()
	dir, err := os.MkdirTemp("", "bench-image-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-image:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	tag, err := benchimage.BuildImage(ctx, cli, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-image:", err)
		return 1
	}
	fmt.Println(tag)
	return 0
}
