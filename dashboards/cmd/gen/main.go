// Command gen writes the suite's Grafana dashboards as JSON, one file per
// dashboard (<name>.json), each replaced atomically:
//
//	go run ./dashboards/cmd/gen -out dashboards
//
// With -prune it also deletes the other .json files of the folder, those of
// dashboards renamed or removed.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hybridsuite/hybrid/dashboards"
	"github.com/hybridsuite/hybrid/internal/atomicfile"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "dashboards", "folder to write the <name>.json files to")
	prune := fs.Bool("prune", false, "delete the folder's other .json files")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gen: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if err := generate(*out, *prune, stdout); err != nil {
		fmt.Fprintf(stderr, "gen: %v\n", err)
		return 1
	}
	return 0
}

func generate(dir string, prune bool, stdout io.Writer) error {
	all, err := dashboards.All()
	if err != nil {
		return err
	}
	written := make(map[string]bool, len(all))
	for _, d := range all {
		data, err := dashboards.Marshal(d)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, d.Name+".json")
		if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
			return err
		}
		written[path] = true
		fmt.Fprintln(stdout, path)
	}
	if !prune {
		return nil
	}
	existing, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, path := range existing {
		if written[path] {
			continue
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		fmt.Fprintf(stdout, "%s (removed)\n", path)
	}
	return nil
}
