package pgtest_test

import (
	"context"
	"database/sql"
	"os"
	"syscall"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/test/pgtest"
)

func TestStart_DatabasesAreSeparateAndDropped(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()

	var version string
	require.NoError(t, srv.Admin(t).QueryRowContext(ctx, "SHOW server_version").Scan(&version))
	require.NotEmpty(t, version)
	var fsync string
	require.NoError(t, srv.Admin(t).QueryRowContext(ctx, "SHOW fsync").Scan(&fsync))
	require.Equal(t, "off", fsync)

	var dsnA string
	t.Run("a", func(t *testing.T) {
		dsnA = srv.Database(t)
		db, err := sql.Open("pgx", dsnA)
		require.NoError(t, err)
		defer db.Close()
		_, err = db.ExecContext(ctx, "CREATE TABLE only_in_a (id INT)")
		require.NoError(t, err)
	})
	dsnB := srv.Database(t)
	require.NotEqual(t, dsnA, dsnB)
	db, err := sql.Open("pgx", dsnB)
	require.NoError(t, err)
	defer db.Close()
	var n int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'only_in_a'").Scan(&n))
	require.Zero(t, n, "a table of another test's database is visible")

	// a's database was dropped when its subtest ended.
	require.NoError(t, srv.Admin(t).QueryRowContext(ctx,
		"SELECT COUNT(*) FROM pg_database WHERE datname LIKE 't\\_%'").Scan(&n))
	require.Equal(t, 1, n)
}

func TestServer_StopThenStart_KeepsDataAndPort(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	db, err := sql.Open("pgx", srv.DSN("postgres"))
	require.NoError(t, err)
	defer db.Close()
	_, err = db.ExecContext(ctx, "CREATE TABLE kept (id INT PRIMARY KEY); INSERT INTO kept VALUES (42)")
	require.NoError(t, err)
	port := srv.Port()

	require.NoError(t, srv.Stop())
	require.Error(t, db.PingContext(ctx))
	require.NoError(t, srv.Start())

	require.Equal(t, port, srv.Port())
	var id int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT id FROM kept").Scan(&id))
	require.Equal(t, 42, id)
}

func TestNew_AsRoot_DataOwnedByUnprivilegedUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only meaningful as root")
	}
	srv := pgtest.Start(t)
	info, err := os.Stat(srv.Dir() + "/data")
	require.NoError(t, err)
	require.NotZero(t, info.Sys().(*syscall.Stat_t).Uid, "the data directory belongs to root")
}
