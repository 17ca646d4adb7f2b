package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// sample is one series of the exposition, shared by every server: the text
// before its value (any # HELP / # TYPE lines, then `name{labels} `) and how
// it moves. Each server has its own params for it.
type sample struct {
	text []byte
	kind kind
	base float64 // the template value, or the generated family's typical value
	rate float64 // typical rate of a counter, per second
	// For histogram buckets: the share of the count at or below le, and
	// the index of the histogram's _count sample, whose params it follows.
	frac    float64
	countAt int
}

// exposition is what every simulated agent serves, with its own values.
type exposition struct {
	samples []sample
	pending []byte // comment lines not yet attached to a sample
}

func (e *exposition) comment(line string) {
	e.pending = append(e.pending, line...)
	e.pending = append(e.pending, '\n')
}

func (e *exposition) add(series string, k kind, base, rate float64) {
	text := append(e.pending, series...)
	e.samples = append(e.samples, sample{text: append(text, ' '), kind: k, base: base, rate: rate})
	e.pending = nil
}

// family writes the HELP and TYPE lines of a generated family.
func (e *exposition) family(name, typ, help string) {
	e.comment("# HELP " + name + " " + help)
	e.comment("# TYPE " + name + " " + typ)
}

// staticGauge reports gauges of the template that must not wobble: flags,
// timestamps, limits and sizes.
func staticGauge(name string, v float64) bool {
	if v == 0 || v == 1 {
		return true
	}
	for _, s := range []string{"timestamp", "time_seconds", "_info", "max", "limit", "size_bytes", "num_cpu", "mtu", "_id"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// parseTemplate reads a real agent's scrape. Counters increase (at their
// value spread over a day), gauges wobble unless staticGauge, the rest is
// static. Families in drop are left out: the generated ones replace them.
func (e *exposition) parseTemplate(data []byte, drop func(name string) bool) error {
	types := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			f := strings.Fields(line)
			if len(f) >= 3 && drop(f[2]) {
				continue
			}
			if len(f) >= 4 && f[1] == "TYPE" {
				types[f[2]] = f[3]
			}
			e.comment(line)
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return fmt.Errorf("template line %q: no value", line)
		}
		series, name := line[:i], line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		if drop(name) {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return fmt.Errorf("template line %q: %w", line, err)
		}
		// The simulated MariaDB is up, so its collector succeeds.
		if name == "hybrid_exporter_collector_success" {
			v = 1
		}
		switch {
		case types[name] == "counter" && v > 0:
			e.add(series, counter, v, v/86400)
		case types[name] == "gauge" && !staticGauge(name, v):
			e.add(series, gauge, v, 0)
		default:
			e.add(series, static, v, 0)
		}
	}
	return sc.Err()
}

// server is one simulated agent: the shared exposition and its own params.
type server struct {
	exp    *exposition
	params []params
}

func newServer(exp *exposition, seed uint64) *server {
	rng := rand.New(rand.NewPCG(seed, 0x72756c6562656e63))
	s := &server{exp: exp, params: make([]params, len(exp.samples))}
	for i, smp := range exp.samples {
		if smp.kind != bucket {
			s.params[i] = draw(rng, smp.kind, smp.base, smp.rate)
		}
	}
	// A bucket follows its histogram's _count, drawn above, scaled by frac.
	for i, smp := range exp.samples {
		if smp.kind == bucket {
			c := s.params[smp.countAt]
			c.amp = smp.frac
			s.params[i] = c
		}
	}
	return s
}

// render appends the exposition at t seconds after start.
func (s *server) render(b []byte, t float64) []byte {
	for i := range s.exp.samples {
		smp := &s.exp.samples[i]
		b = append(b, smp.text...)
		b = strconv.AppendFloat(b, s.params[i].value(smp.kind, t), 'g', -1, 64)
		b = append(b, '\n')
	}
	return append(b, s.exp.pending...)
}
