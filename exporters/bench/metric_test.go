package bench

import (
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

// metricValue returns a metric's name, its labels and its value.
func metricValue(t testing.TB, m prometheus.Metric) (string, map[string]string, float64) {
	t.Helper()
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		t.Fatalf("write metric: %v", err)
	}
	name := ""
	if sub := descName.FindStringSubmatch(m.Desc().String()); sub != nil {
		name = sub[1]
	}
	labels := map[string]string{}
	for _, lp := range pb.GetLabel() {
		labels[lp.GetName()] = lp.GetValue()
	}
	switch {
	case pb.Counter != nil:
		return name, labels, pb.GetCounter().GetValue()
	case pb.Gauge != nil:
		return name, labels, pb.GetGauge().GetValue()
	}
	return name, labels, 0
}
