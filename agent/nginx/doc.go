// Package nginx makes the host nginx route each site, by Host header, to the
// port its bench container publishes on 127.0.0.1.
//
// Apply never leaves nginx running an unchecked or unproven configuration:
// every Apply writes a complete new generation of snippets under
// <Dir>/generations/<n>/benches, switches the <Dir>/benches symlink to it with
// one rename, runs `nginx -t`, reloads, and then polls a probe server that
// answers the generation number nginx actually serves. A failed check or a
// reload that does not take (the configuration parses but nginx cannot load
// it: a port taken, a file unreadable by the master) switches the link back,
// so the files included are again the ones served.
//
// Two modes. With Options.MainConfig empty the agent owns nginx: it writes
// <Dir>/nginx.conf and runs nginx itself (Start, Stop). With a system nginx,
// MainConfig names its main file (usually /etc/nginx/nginx.conf) and the
// operator adds one line to its http block:
//
//	include /home/frappe/agent/nginx/benches/*.conf;
//
// The probe server listens on Options.ProbeListen (127.0.0.1:9471 by default);
// a system nginx must be allowed to bind it.
//
// With Options.AccessLogSocket set, every site server (and the owned
// default server, for unknown hosts) also sends each request's access log
// line, in the fixed format LogFormat, to that unix datagram socket, where
// exporters/sitelog counts it; Options.SitesServed tells the counter which
// hosts are sites. Refresh renders the served routes again at start, so a
// configuration written by an older agent, or with other options, is
// brought up to date without waiting for a routing job.
package nginx
