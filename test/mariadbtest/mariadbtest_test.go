package mariadbtest_test

import (
	"context"
	"database/sql"
	"os"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/test/mariadbtest"
)

func TestStart_ServerAcceptsRootAndCredentialsUser(t *testing.T) {
	srv := mariadbtest.Start(t)

	var version string
	require.NoError(t, srv.Root(t).QueryRowContext(context.Background(), "SELECT VERSION()").Scan(&version))
	require.Contains(t, version, "MariaDB")

	path := srv.WriteCredentials(t, "exporter", `pa'ss"wo#rd`)
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	db, err := sql.Open("mysql", srv.DSN("exporter", `pa'ss"wo#rd`))
	require.NoError(t, err)
	defer db.Close()
	var grants int
	require.NoError(t, db.QueryRowContext(context.Background(),
		"SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = \"'exporter'@'%'\" AND PRIVILEGE_TYPE IN ('PROCESS', 'BINLOG MONITOR', 'SLAVE MONITOR', 'SELECT')").Scan(&grants))
	require.Equal(t, 4, grants)
}

func TestServer_StopThenStart_KeepsDataAndPort(t *testing.T) {
	srv := mariadbtest.Start(t)
	srv.Exec(t, "CREATE DATABASE kept", "CREATE TABLE kept.t (id INT PRIMARY KEY)", "INSERT INTO kept.t VALUES (42)")
	port := srv.Port()

	require.NoError(t, srv.Stop())
	require.Error(t, srv.Root(t).PingContext(context.Background()))
	require.NoError(t, srv.Start())

	require.Equal(t, port, srv.Port())
	var id int
	require.NoError(t, srv.Root(t).QueryRowContext(context.Background(), "SELECT id FROM kept.t").Scan(&id))
	require.Equal(t, 42, id)
}
