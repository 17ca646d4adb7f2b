// Package agent is the on-server agent: it serves the exporters' metrics and
// (later) runs site and bench operations as durable jobs. It must stay slim: it
// never imports the TSDB, the rules engine or Alertmanager's packages.
package agent
