package main

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidateSiteName(t *testing.T) {
	for _, ok := range []string{"localhost", "site1.local", "a-b.example.com", "x1", strings.Repeat("a", 63) + ".test"} {
		require.NoError(t, validateSiteName(ok), ok)
	}
	for _, bad := range []string{"", ".", "a..b", ".a", "a.", "-a", "a-", "A.test", "a_b", "a b", "a/b", "..", strings.Repeat("a", 64), strings.Repeat("a.", 127) + "ab"} {
		require.Error(t, validateSiteName(bad), bad)
	}
}

func TestStatementReader_SplitsDumpText(t *testing.T) {
	script := "-- header comment\n" +
		"/*!40101 SET NAMES utf8mb4 */;\n" +
		"# hash comment\n" +
		"/* plain comment; with semicolon */ CREATE TABLE `a;b` (x int);\n" +
		"INSERT INTO t VALUES ('it''s; here', \"dq;\", 'back\\'slash;', 5--1);\n" +
		";;\n" +
		"SELECT 1 -- trailing comment; not a split\n" +
		"  ;\n" +
		"SELECT 2"
	sr := newStatementReader(strings.NewReader(script))
	var got []string
	for {
		s, err := sr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		got = append(got, s)
	}
	require.Equal(t, []string{
		"/*!40101 SET NAMES utf8mb4 */",
		"CREATE TABLE `a;b` (x int)",
		"INSERT INTO t VALUES ('it''s; here', \"dq;\", 'back\\'slash;', 5--1)",
		"SELECT 1",
		"SELECT 2",
	}, got)
}

func TestStatementReader_UnterminatedString_Fails(t *testing.T) {
	sr := newStatementReader(strings.NewReader("INSERT INTO t VALUES ('open"))
	_, err := sr.Next()
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
}

func TestParseSiteConfig_StringPortAndCommonConfig(t *testing.T) {
	cfg, err := parseSiteConfig("s", map[string]any{"db_name": "d", "db_port": "3307", "maintenance_mode": true},
		map[string]any{"db_host": "10.0.0.1"})
	require.NoError(t, err)
	require.Equal(t, &siteConfig{DBName: "d", DBHost: "10.0.0.1", DBPort: 3307, Maintenance: true}, cfg)

	_, err = parseSiteConfig("s", map[string]any{"db_port": "x"}, nil)
	require.ErrorContains(t, err, "db_port")
	require.ErrorContains(t, err, "db_name is missing")
}
