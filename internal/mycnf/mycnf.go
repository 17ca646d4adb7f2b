// Package mycnf reads the [client] section of a my.cnf style credentials
// file, as the mariadb client and mysqld_exporter do, refusing files that
// others may read. The password never reaches a log line or an error.
package mycnf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// Defaults used when the Credentials file leaves host, port or socket out.
const (
	defaultHost = "127.0.0.1"
	defaultPort = 3306
)

// Credentials is the [client] section of a my.cnf style file. The password
// stays in this struct and in the driver's config: it never reaches a log
// line (see LogValue) nor an error message.
type Credentials struct {
	User     string
	Password string
	Host     string
	Port     int
	Socket   string
}

// LogValue keeps the password out of structured logs even if someone logs the
// whole struct.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user", c.User), slog.String("addr", c.Address()))
}

// String keeps the password out of %v and %s formatting.
func (c Credentials) String() string { return c.User + "@" + c.Address() }

// network returns the driver's network: a socket wins over TCP when the host
// is unset or "localhost", as with the mariadb client.
func (c Credentials) Network() string {
	if c.Socket != "" && (c.Host == "" || c.Host == "localhost") {
		return "unix"
	}
	return "tcp"
}

// address is where the server is reached, for the driver and for messages.
func (c Credentials) Address() string {
	if c.Network() == "unix" {
		return c.Socket
	}
	host := c.Host
	if host == "" {
		host = defaultHost
	}
	port := c.Port
	if port == 0 {
		port = defaultPort
	}
	return hostPort(host, port)
}

func hostPort(host string, port int) string {
	if strings.Contains(host, ":") { // IPv6 literal
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

// Read opens path, refuses it when group or others may read it
// (it holds a password), and parses its [client] section.
func Read(path string) (Credentials, error) {
	f, err := os.Open(path)
	if err != nil {
		return Credentials{}, fmt.Errorf("mariadb credentials: %w", err)
	}
	defer f.Close()
	// Stat the open file rather than the path, so the checked file is the read one.
	info, err := f.Stat()
	if err != nil {
		return Credentials{}, fmt.Errorf("mariadb credentials: stat %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return Credentials{}, fmt.Errorf("mariadb credentials file %s is not a regular file", path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return Credentials{}, fmt.Errorf("mariadb credentials file %s has mode %04o: it holds a password, so group and others must have no access (want 0600 or stricter: chmod 600 %s)",
			path, perm, path)
	}
	return Parse(f, path)
}

// Parse reads the [client] section of a my.cnf style file:
//
//	[client]
//	user = hybrid_exporter
//	password = "secret # with a hash"
//	host = 127.0.0.1
//	port = 3306
//	socket = /run/mysqld/mysqld.sock
//
// Keys may use '-' or '_'; '#' and ';' start comment lines, and '#' starts a
// comment after an unquoted value (quote a password that contains '#').
// Other sections are ignored, an unknown key in [client] is an error. Every
// problem is reported at once, by line number: no message quotes a value or
// even a key, since a malformed line ("password: s3cret") may hold the password.
func Parse(r io.Reader, name string) (Credentials, error) {
	var (
		c        Credentials
		problems []error
		section  string
		lineNo   int
	)
	problem := func(format string, args ...any) {
		problems = append(problems, fmt.Errorf("line %d: "+format, append([]any{lineNo}, args...)...))
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if lineNo == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case line[0] == '!':
			problem("include directives are not supported in a credentials file")
			continue
		case line[0] == '[':
			end := strings.IndexByte(line, ']')
			if end < 0 {
				problem("section header has no closing ']'")
				continue
			}
			section = strings.ToLower(strings.TrimSpace(line[1:end]))
			continue
		}
		if section != "client" {
			continue
		}
		key, raw, hasValue := strings.Cut(line, "=")
		key = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(key)), "-", "_")
		if !hasValue {
			problem("not a key = value line in [client]")
			continue
		}
		value, err := optionValue(raw)
		if err != nil {
			problem("value of %s: %v", key, err)
			continue
		}
		switch key {
		case "user":
			c.User = value
		case "password":
			c.Password = value
		case "host":
			c.Host = value
		case "socket":
			c.Socket = value
		case "port":
			port, err := strconv.Atoi(value)
			if err != nil || port < 1 || port > 65535 {
				problem("port must be a number between 1 and 65535")
				continue
			}
			c.Port = port
		default:
			problem("unknown key in [client] (supported: user, password, host, port, socket)")
		}
	}
	if err := sc.Err(); err != nil {
		return Credentials{}, fmt.Errorf("read mariadb credentials file %s: %w", name, err)
	}
	if c.User == "" {
		problems = append(problems, errors.New("user is missing in the [client] section"))
	}
	if len(problems) > 0 {
		return Credentials{}, fmt.Errorf("mariadb credentials file %s: %w", name, errors.Join(problems...))
	}
	return c, nil
}

// optionValue unquotes a my.cnf value. Quoted values keep '#' and spaces and
// understand the escapes \\ \' \" \n \t \s; unquoted values end at '#'.
// Errors never include the value.
func optionValue(raw string) (string, error) {
	v := strings.TrimSpace(raw)
	if v == "" {
		return "", nil
	}
	if q := v[0]; q == '"' || q == '\'' {
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			ch := v[i]
			switch {
			case ch == q:
				rest := strings.TrimSpace(v[i+1:])
				if rest != "" && rest[0] != '#' && rest[0] != ';' {
					return "", errors.New("unexpected text after the closing quote")
				}
				return b.String(), nil
			case ch == '\\' && i+1 < len(v):
				i++
				switch v[i] {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case 's':
					b.WriteByte(' ')
				default:
					b.WriteByte(v[i])
				}
			default:
				b.WriteByte(ch)
			}
		}
		return "", errors.New("unterminated quote")
	}
	if i := strings.IndexByte(v, '#'); i >= 0 {
		v = strings.TrimSpace(v[:i])
	}
	return v, nil
}

// DriverConfig is a go-sql-driver configuration that logs in with c. The
// password goes into the configuration directly, never through a DSN string
// that an error message could carry.
func (c Credentials) DriverConfig() *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = c.User, c.Password
	cfg.Net, cfg.Addr = c.Network(), c.Address()
	return cfg
}
