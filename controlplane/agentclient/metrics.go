package agentclient

import "github.com/prometheus/client_golang/prometheus"

// circuitCollector reports each client's breaker state when scraped.
type circuitCollector struct {
	clients func() []*Client
	desc    *prometheus.Desc
}

// NewCircuitCollector reports hybrid_controlplane_agent_circuit_state{server}
// (0 closed, 1 half-open, 2 open) for the clients the function lists at
// scrape time, so servers that come and go need no registration.
func NewCircuitCollector(clients func() []*Client) prometheus.Collector {
	return &circuitCollector{
		clients: clients,
		desc: prometheus.NewDesc("hybrid_controlplane_agent_circuit_state",
			"State of the circuit breaker in front of a server's agent: 0 closed, 1 half-open, 2 open.",
			[]string{"server"}, nil),
	}
}

func (c *circuitCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *circuitCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[string]bool{}
	for _, client := range c.clients() {
		if seen[client.Server()] {
			continue // one series per server, even if listed twice
		}
		seen[client.Server()] = true
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(client.State()), client.Server())
	}
}
