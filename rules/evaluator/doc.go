// Package evaluator is `hybrid monitor`: it scrapes the agents of every
// configured server and probes every configured site, stores the samples in an
// embedded TSDB (prometheus/prometheus's tsdb as a library), evaluates the rule
// groups with prometheus/prometheus's rules manager, and hands firing and
// resolved alerts to alerting/. It lives in the control core, never in the agent.
//
// Between the rules manager and alerting/ sits the holder (hold.go): an alert
// whose series vanished because its scrape target (job, instance) is down is
// not sent resolved but held firing, marked with a target_down annotation once
// the target's down alert (HybridAgentDown, ScrapeTargetDown) fires, until the
// target is scraped again and the rules decide. Without Alertmanager, the plain
// webhook gets a notice per change and a reminder every
// alerting.webhook_repeat_interval (the Watchdog every
// alerting.webhook_watchdog_repeat_interval), not every resend.
package evaluator
