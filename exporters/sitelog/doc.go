// Package sitelog counts the requests nginx serves for each site, by status
// code, and their durations, from nginx's access log lines sent to the agent
// over a unix datagram socket (agent/nginx renders the log_format and the
// access_log lines).
//
// A single reader, on its own OS thread, parses each datagram in place (no
// allocation per line) into counters kept in memory, so they survive nginx
// reloads and a scrape reads no file. nginx sends without blocking: a line
// that does not fit in the socket's queue is dropped by nginx, silently. So
// the socket is made with a long queue (net.unix.max_dgram_qlen is raised
// around its creation only, then set back), the reader never waits on
// anything but the socket, and lines lost anyway are counted where they show:
// as gaps in the request numbers of a kept-alive connection.
//
// Cardinality is bounded: a Host that is not one of the served sites (see
// SetSites) counts as site="_other", and the code label is nginx's 3-digit
// status.
package sitelog
