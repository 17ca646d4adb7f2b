// Package mariadb collects a MariaDB server's metrics for the agent.
//
// The names are prometheus mysqld_exporter's (mysql_up, mysql_version_info,
// mysql_global_status_*, mysql_global_variables_*, mysql_slave_status_*,
// mysql_info_schema_processlist_*), so its dashboards and the mysqld-mixin
// rules work unchanged; what it does not measure is named hybrid_mariadb_*
// (the size and table count of each database, that is of each site).
//
// The exporter's user needs what mysqld_exporter documents, plus SLAVE
// MONITOR for replica status on MariaDB 10.5.9 and later:
//
//	CREATE USER 'hybrid_exporter'@'localhost' IDENTIFIED BY '...';
//	GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR, SELECT ON *.* TO 'hybrid_exporter'@'localhost';
//
// Its credentials come from a my.cnf style file, which must have mode 0600 or
// stricter, like mysqld_exporter's .my.cnf:
//
//	[client]
//	user = hybrid_exporter
//	password = "secret"   # quote a password that holds '#'
//	host = 127.0.0.1
//	port = 3306
//	# or, instead of host and port: socket = /run/mysqld/mysqld.sock
//
// The password is never logged nor put in an error. A scrape never waits
// behind DDL (lock_wait_timeout), never runs twice at once, and never reads
// information_schema.TABLES in full: database sizes are refreshed in the
// background (see databaseSizes for what that costs).
//
// A scrape is one round trip on a kept-open connection: its statements go to
// the server as one multi-statement query (runBatch). SHOW GLOBAL VARIABLES,
// some 600 settings that almost never change, is read at most once per
// Options.VariablesInterval (a minute by default) and at once after a
// restart; the scrapes in between send the values last read, so a SET GLOBAL
// shows in mysql_global_variables_* within that interval.
package mariadb
