package backup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxSecretBytes bounds a credentials file; keys are tens of bytes.
const maxSecretBytes = 4096

// ErrInsecureCredentials is returned for a credentials file that others than
// its owner can read or write.
var ErrInsecureCredentials = errors.New("credentials file is accessible to group or others")

// readSecretFile reads a one-line secret from a regular file of mode 0600 or
// stricter. Errors name the file and never its content.
func readSecretFile(what, path string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("%s: no file configured", what)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s %s: not a regular file", what, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%s %s: %w: mode %04o, want 0600", what, path, ErrInsecureCredentials, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretBytes+1))
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", what, path, err)
	}
	if len(data) > maxSecretBytes {
		return "", fmt.Errorf("%s %s: longer than %d bytes", what, path, maxSecretBytes)
	}
	s := strings.TrimSpace(string(data))
	if s == "" || strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("%s %s: want exactly one non-empty line", what, path)
	}
	return s, nil
}
