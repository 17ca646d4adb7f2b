package rules

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/hybridsuite/hybrid/internal/atomicfile"
)

// builtin holds the rule files shipped in the binary (the tests beside them
// are left out below).
//
//go:embed *.yml
var builtin embed.FS

// Builtin lists the names of the rule files built into the binary, sorted.
func Builtin() []string {
	entries, _ := fs.ReadDir(builtin, ".")
	var names []string
	for _, e := range entries {
		if !isTestFile(e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

// WriteBuiltin writes the built-in rule files into dir, replacing what an
// earlier version wrote there, and returns their paths. The rules manager
// loads rule files from disk, and an operator can read what is evaluated.
func WriteBuiltin(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("write built-in rules: %w", err)
	}
	var paths []string
	for _, name := range Builtin() {
		data, err := builtin.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read built-in rule file %s: %w", name, err)
		}
		path := filepath.Join(dir, name)
		if err := atomicfile.WriteFile(path, data, 0o640); err != nil {
			return nil, fmt.Errorf("write built-in rules: %w", err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}
