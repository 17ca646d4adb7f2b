package main

import (
	"math"
	"math/rand/v2"
)

// kind says how a sample moves between scrapes.
type kind uint8

const (
	static  kind = iota // never changes: info metrics, 0/1 flags, summaries
	counter             // base + rate*t, never decreases
	steps               // floor(base + rate*t): job and request counts
	gauge               // base*(1 + amp*sin(2πt/period + phase))
	bucket              // floor(steps * amp): a histogram bucket, amp its share of the count
)

// params is one server's parameters for one sample: each server draws its
// own from a generator seeded with its index, so servers differ but a run is
// reproducible.
type params struct {
	base, rate, amp, omega, phase float64
}

// value is the sample at t seconds after the simulator started.
func (p params) value(k kind, t float64) float64 {
	switch k {
	case counter:
		return p.base + p.rate*t
	case steps:
		return math.Floor(p.base + p.rate*t)
	case gauge:
		return p.base * (1 + p.amp*math.Sin(p.omega*t+p.phase))
	case bucket:
		return math.Floor(math.Floor(p.base+p.rate*t) * p.amp)
	default:
		return p.base
	}
}

// draw makes one server's parameters for a sample of kind k whose template
// value is base; rate is the typical rate of a counter (per second).
func draw(rng *rand.Rand, k kind, base, rate float64) params {
	p := params{base: base}
	switch k {
	case counter, steps:
		p.base = base * (0.5 + rng.Float64())
		p.rate = rate * (0.5 + rng.Float64())
	case gauge:
		p.base = base * (0.8 + 0.4*rng.Float64())
		p.amp = 0.02 + 0.08*rng.Float64()
		// A period of 5 to 60 minutes: visible within a short run, so
		// predict_linear and the anomaly bands see movement.
		p.omega = 2 * math.Pi / (300 + 3300*rng.Float64())
		p.phase = 2 * math.Pi * rng.Float64()
	}
	return p
}
