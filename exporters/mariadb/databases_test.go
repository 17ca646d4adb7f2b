package mariadb

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/test/mariadbtest"
)

func refresh(t *testing.T, c *Collector) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, c.databases.refresh(ctx))
}

func TestDatabases_FiftyDatabases_ReportsSizeAndTableCountOfEach(t *testing.T) {
	c, srv := exporterCollector(t)
	for i := range 50 {
		db := fmt.Sprintf("site_%02d", i)
		stmts := []string{"CREATE DATABASE " + db}
		for j := range i%3 + 1 { // 1, 2 or 3 tables
			stmts = append(stmts, fmt.Sprintf("CREATE TABLE %s.t%d (id INT PRIMARY KEY, v VARCHAR(255)) ENGINE=InnoDB", db, j))
		}
		srv.Exec(t, stmts...)
	}
	t.Cleanup(func() {
		for i := range 50 {
			srv.Exec(t, fmt.Sprintf("DROP DATABASE site_%02d", i))
		}
	})

	refresh(t, c)
	f, err := scrape(t, c)
	require.NoError(t, err)

	var sites int
	for _, m := range f.find("hybrid_mariadb_database_size_bytes") {
		if strings.HasPrefix(m.GetLabel()[0].GetValue(), "site_") {
			sites++
		}
	}
	require.Equal(t, 50, sites)
	for i := range 50 {
		db := fmt.Sprintf("site_%02d", i)
		require.Equal(t, float64(i%3+1), f.value(t, "hybrid_mariadb_database_tables", "database", db), db)
		require.Equal(t, float64((i%3+1)*16384), f.value(t, "hybrid_mariadb_database_size_bytes", "database", db),
			"%s: one 16 KiB InnoDB page per empty table", db)
	}
	for _, system := range []string{"mysql", "information_schema", "performance_schema", "sys"} {
		require.Empty(t, f.find("hybrid_mariadb_database_size_bytes", "database", system))
	}
	require.InDelta(t, float64(time.Now().Unix()), f.value(t, "hybrid_mariadb_database_refresh_timestamp_seconds"), 60)
	require.Positive(t, f.value(t, "hybrid_mariadb_database_refresh_duration_seconds"))
	require.Equal(t, 1.0, f.value(t, "hybrid_mariadb_database_refresh_success"))
	before := f.value(t, "hybrid_mariadb_database_size_bytes", "database", "site_00")

	// About 4 MiB of rows; ANALYZE TABLE updates InnoDB's statistics now
	// rather than in the background some seconds later.
	srv.Exec(t,
		"INSERT INTO site_00.t0 SELECT seq, REPEAT('x', 255) FROM site_00.seq_1_to_16000",
		"ANALYZE TABLE site_00.t0",
	)
	refresh(t, c)
	f, err = scrape(t, c)
	require.NoError(t, err)

	after := f.value(t, "hybrid_mariadb_database_size_bytes", "database", "site_00")
	require.Greater(t, after, before+3*1024*1024, "size before %v, after %v", before, after)
	require.Equal(t, 1.0, f.value(t, "hybrid_mariadb_database_tables", "database", "site_00"))
}

func TestDatabases_MixedEngines_MatchInformationSchema(t *testing.T) {
	c, srv := exporterCollector(t)
	srv.Exec(t,
		"CREATE DATABASE mixed",
		"CREATE TABLE mixed.`tabSales Invoice` (id INT PRIMARY KEY, v TEXT, KEY (v(10))) ENGINE=InnoDB",
		"INSERT INTO mixed.`tabSales Invoice` SELECT seq, REPEAT('i', 500) FROM mixed.seq_1_to_3000",
		"ANALYZE TABLE mixed.`tabSales Invoice`",
		"CREATE TABLE mixed.__global_search (id INT PRIMARY KEY, content TEXT, FULLTEXT (content)) ENGINE=MyISAM",
		"INSERT INTO mixed.__global_search SELECT seq, REPEAT('word ', 100) FROM mixed.seq_1_to_500",
		"CREATE TABLE mixed.aria (id INT PRIMARY KEY) ENGINE=Aria",
		"CREATE TABLE mixed.parted (id INT PRIMARY KEY) ENGINE=InnoDB PARTITION BY HASH (id) PARTITIONS 3",
		"CREATE TABLE mixed.nostats (id INT PRIMARY KEY) ENGINE=InnoDB STATS_PERSISTENT=0",
		"CREATE VIEW mixed.v AS SELECT id FROM mixed.parted",
		"CREATE DATABASE empty_site",
	)
	t.Cleanup(func() { srv.Exec(t, "DROP DATABASE mixed", "DROP DATABASE empty_site") })
	var wantTables, wantBytes float64
	require.NoError(t, srv.Root(t).QueryRowContext(context.Background(),
		"SELECT COUNT(*), SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES "+
			"WHERE TABLE_SCHEMA = 'mixed' AND TABLE_TYPE = 'BASE TABLE'").Scan(&wantTables, &wantBytes))

	refresh(t, c)
	f, err := scrape(t, c)
	require.NoError(t, err)

	require.Equal(t, 5.0, wantTables)
	require.Equal(t, wantTables, f.value(t, "hybrid_mariadb_database_tables", "database", "mixed"), "views are not tables")
	require.Equal(t, wantBytes, f.value(t, "hybrid_mariadb_database_size_bytes", "database", "mixed"))
	require.Equal(t, 0.0, f.value(t, "hybrid_mariadb_database_tables", "database", "empty_site"))
	require.Equal(t, 0.0, f.value(t, "hybrid_mariadb_database_size_bytes", "database", "empty_site"))
}

func TestStart_LongInterval_FirstRefreshRunsAtOnce(t *testing.T) {
	srv := shared.Server(t)
	c, err := New(discardLogger(), Options{
		CredentialsFile:   srv.WriteCredentials(t, "hybrid_exporter", "exporter-pw"),
		DatabasesInterval: time.Hour,
	})
	require.NoError(t, err)
	defer c.Close()

	c.Start(context.Background())

	require.Eventually(t, func() bool {
		f, _, _ := gather(c)
		return len(f.find("hybrid_mariadb_database_refresh_timestamp_seconds")) == 1
	}, 10*time.Second, 20*time.Millisecond)
}

func TestDatabases_ServerDown_KeepsPreviousValuesAndReportsFailure(t *testing.T) {
	srv := shared.Server(t)
	logger, logs := bufferLogger()
	c := newCollector(t, logger, srv.WriteCredentials(t, "hybrid_exporter", "exporter-pw"))
	srv.Exec(t, "CREATE DATABASE kept_site")
	t.Cleanup(func() { srv.Exec(t, "DROP DATABASE kept_site") })
	refresh(t, c)

	// A pool that cannot reach the server stands in for a server that is down,
	// without stopping the shared one.
	down, err := New(discardLogger(), Options{
		CredentialsFile: mariadbtest.WriteCredentialsFile(t, "u", "p", "127.0.0.1", 1),
	})
	require.NoError(t, err)
	defer down.Close()
	c.databases.db = down.db
	for range 2 {
		require.Error(t, c.databases.refresh(context.Background()))
	}
	f, err := scrape(t, c)
	require.NoError(t, err)

	require.Equal(t, 0.0, f.value(t, "hybrid_mariadb_database_refresh_success"))
	require.NotEmpty(t, f.find("hybrid_mariadb_database_size_bytes", "database", "kept_site"), "previous values kept")
	require.NotEmpty(t, f.find("hybrid_mariadb_database_refresh_timestamp_seconds"))
	require.Equal(t, 1, strings.Count(logs.String(), "database sizes not refreshed"), "logged once:\n%s", logs)
}

// BenchmarkDatabasesRefresh_5000Databases measures one refresh over 5,000
// one-table databases (creating them takes about 10 s, once):
//
//	go test -run '^$' -bench DatabasesRefresh -benchtime 5x ./exporters/mariadb/
func BenchmarkDatabasesRefresh_5000Databases(b *testing.B) {
	srv := mariadbtest.Start(b)
	var stmts []string
	for i := range 5000 {
		db := fmt.Sprintf("bench_%04d", i)
		stmts = append(stmts,
			"CREATE DATABASE "+db,
			"CREATE TABLE "+db+".t (id INT PRIMARY KEY, v VARCHAR(100)) ENGINE=InnoDB",
			"INSERT INTO "+db+".t VALUES (1, 'x')")
		if i%10 == 0 { // some Frappe-like MyISAM tables, sized one by one
			stmts = append(stmts, "CREATE TABLE "+db+".__global_search (id INT PRIMARY KEY) ENGINE=MyISAM")
		}
	}
	srv.Exec(b, stmts...)
	c, err := New(discardLogger(), Options{CredentialsFile: srv.WriteCredentials(b, "hybrid_exporter", "exporter-pw")})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()

	b.ResetTimer()
	for b.Loop() {
		if err := c.databases.refresh(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c.databases.mu.Lock()
	defer c.databases.mu.Unlock()
	if len(c.databases.stats) != 5000 {
		b.Fatalf("%d databases, want 5000", len(c.databases.stats))
	}
}
