package childproc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// MissingError says which program a test server needs is not installed, and
// how to get it.
type MissingError struct {
	Name string   // the program
	Dirs []string // where it was looked for besides PATH
	Hint string   // how to install it
}

func (e *MissingError) Error() string {
	where := "PATH"
	if len(e.Dirs) > 0 {
		where += ", " + strings.Join(e.Dirs, ", ")
	}
	return fmt.Sprintf("%s not found (looked in %s); %s", e.Name, where, e.Hint)
}

// FindBinary finds an executable on PATH, then in dirs, in order; else a
// *MissingError carrying hint.
func FindBinary(name, hint string, dirs ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if info, err := os.Stat(p); err == nil && !info.IsDir() && info.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &MissingError{Name: name, Dirs: dirs, Hint: hint}
}

// SkipOrFatal ends a test whose server could not start: a missing program
// skips it, except in CI (CI=true), where a missing dependency is a failure;
// any other error fails it.
func SkipOrFatal(t testing.TB, err error) {
	t.Helper()
	var missing *MissingError
	if errors.As(err, &missing) && os.Getenv("CI") != "true" {
		t.Skip(err.Error())
	}
	t.Fatal(err)
}

// FreePort is a free TCP port of 127.0.0.1 for a server to listen on.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
