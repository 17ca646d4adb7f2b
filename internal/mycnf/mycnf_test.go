package mycnf

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseCredentials(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		want    Credentials
		network string
		addr    string
	}{
		{
			name:    "tcp host and port",
			file:    "[client]\nuser = hybrid_exporter\npassword = secret\nhost = 127.0.0.1\nport = 3307\n",
			want:    Credentials{User: "hybrid_exporter", Password: "secret", Host: "127.0.0.1", Port: 3307},
			network: "tcp", addr: "127.0.0.1:3307",
		},
		{
			name:    "socket without host",
			file:    "[client]\nuser=exporter\nsocket=/run/mysqld/mysqld.sock\n",
			want:    Credentials{User: "exporter", Socket: "/run/mysqld/mysqld.sock"},
			network: "unix", addr: "/run/mysqld/mysqld.sock",
		},
		{
			name:    "socket with localhost",
			file:    "[client]\nuser=exporter\nhost=localhost\nsocket=/tmp/m.sock\n",
			want:    Credentials{User: "exporter", Host: "localhost", Socket: "/tmp/m.sock"},
			network: "unix", addr: "/tmp/m.sock",
		},
		{
			name:    "defaults when host and port are missing",
			file:    "[client]\nuser=exporter\n",
			want:    Credentials{User: "exporter"},
			network: "tcp", addr: "127.0.0.1:3306",
		},
		{
			name:    "ipv6 host",
			file:    "[client]\nuser=exporter\nhost=::1\n",
			want:    Credentials{User: "exporter", Host: "::1"},
			network: "tcp", addr: "[::1]:3306",
		},
		{
			name: "comments, other sections, dashes and case",
			file: "# exporter\n; also a comment\n[mysqld]\nuser = mysql\n\n[CLIENT]\nUser = exporter # inline comment\n" +
				"password = pw ; not a comment\n",
			want:    Credentials{User: "exporter", Password: "pw ; not a comment"},
			network: "tcp", addr: "127.0.0.1:3306",
		},
		{
			name:    "quoted password keeps hash, spaces and escapes",
			file:    "[client]\nuser = exporter\npassword = \"s3c#r3t \\\"q\\\" \\\\ x\"  # comment\n",
			want:    Credentials{User: "exporter", Password: `s3c#r3t "q" \ x`},
			network: "tcp", addr: "127.0.0.1:3306",
		},
		{
			name:    "single-quoted password",
			file:    "[client]\nuser = exporter\npassword = 'a b'\n",
			want:    Credentials{User: "exporter", Password: "a b"},
			network: "tcp", addr: "127.0.0.1:3306",
		},
		{
			name:    "last value wins",
			file:    "[client]\nuser = first\nuser = second\n",
			want:    Credentials{User: "second"},
			network: "tcp", addr: "127.0.0.1:3306",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.file), "test.cnf")
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.network, got.Network())
			require.Equal(t, tt.addr, got.Address())
		})
	}
}

func TestParseCredentials_Invalid_NamesEveryProblemWithoutValues(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string
	}{
		{name: "missing user", file: "[client]\npassword = hunter2\n", want: []string{"user is missing"}},
		{name: "no client section", file: "[mysqld]\nuser = hunter2\n", want: []string{"user is missing"}},
		{name: "bad port", file: "[client]\nuser = u\nport = hunter2\n", want: []string{"line 3: port must be a number"}},
		{name: "unknown key", file: "[client]\nuser = u\nssl-ca = hunter2\n", want: []string{"line 3: unknown key in [client]"}},
		{name: "line without equals", file: "[client]\nuser = u\npassword: hunter2\n", want: []string{"line 3: not a key = value line"}},
		{name: "unterminated quote", file: "[client]\nuser = u\npassword = \"hunter2\n", want: []string{"line 3: value of password: unterminated quote"}},
		{name: "text after quote", file: "[client]\nuser = u\npassword = 'hunter2' x\n", want: []string{"line 3: value of password: unexpected text"}},
		{name: "include", file: "!include /etc/hunter2.cnf\n[client]\nuser = u\n", want: []string{"line 1: include directives are not supported"}},
		{
			name: "several problems at once",
			file: "[client]\nport = 0\nhunter2\n",
			want: []string{"line 2: port", "line 3: not a key = value", "user is missing"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.file), "/etc/hybrid/mariadb.cnf")
			require.Error(t, err)
			require.Contains(t, err.Error(), "/etc/hybrid/mariadb.cnf")
			for _, w := range tt.want {
				require.Contains(t, err.Error(), w)
			}
			require.NotContains(t, err.Error(), "hunter2")
		})
	}
}

func TestCredentials_LogValueAndString_OmitPassword(t *testing.T) {
	c := Credentials{User: "u", Password: "hunter2", Host: "db", Port: 3306}
	require.NotContains(t, c.String(), "hunter2")
	require.NotContains(t, c.LogValue().String(), "hunter2")
	require.Contains(t, c.LogValue().String(), "db:3306")
}
