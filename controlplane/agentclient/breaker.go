package agentclient

import (
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Clock is the time the breaker and the poller go by; tests drive it.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// State is a circuit breaker's state.
type State int

// Closed: calls go out. Open: calls fail with ErrCircuitOpen, no request.
// HalfOpen: the cool-down passed; the next call pings the agent first and
// closes the circuit when it answers, or opens it for another cool-down.
const (
	Closed State = iota
	HalfOpen
	Open
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return "unknown"
}

// BreakerOptions configure a server's circuit breaker; zero fields take the
// defaults.
type BreakerOptions struct {
	// FailureThreshold failed requests in a row (connection errors,
	// timeouts, 5xx; a 4xx is an answer) open the circuit.
	FailureThreshold int
	// CoolDown is how long it stays open, plus a random part of up to
	// CoolDownJitter of it (so that servers that failed together are not
	// probed together); a negative CoolDownJitter means none.
	CoolDown       time.Duration
	CoolDownJitter float64
}

type verdict int

const (
	pass  verdict = iota // closed: go
	probe                // half-open: ping first
	deny                 // open, or another caller is probing
)

type breaker struct {
	clock     Clock
	threshold int
	coolDown  time.Duration
	jitter    float64
	logger    *slog.Logger

	mu        sync.Mutex
	open      bool
	failures  int // in a row, while closed
	openUntil time.Time
	probing   bool
}

func newBreaker(o BreakerOptions, clock Clock, logger *slog.Logger) *breaker {
	jitter := o.CoolDownJitter
	switch {
	case jitter == 0:
		jitter = DefaultCoolDownJitter
	case jitter < 0:
		jitter = 0
	}
	return &breaker{
		clock:     clock,
		threshold: orDefault(o.FailureThreshold, DefaultFailureThreshold),
		coolDown:  orDefault(o.CoolDown, DefaultCoolDown),
		jitter:    jitter,
		logger:    logger,
	}
}

// State says what the next call would meet.
func (b *breaker) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !b.open:
		return Closed
	case b.probing || !b.clock.Now().Before(b.openUntil):
		return HalfOpen
	}
	return Open
}

func (b *breaker) allow() verdict {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !b.open:
		return pass
	case b.probing || b.clock.Now().Before(b.openUntil):
		return deny
	}
	b.probing = true
	return probe
}

// record counts a request's outcome while closed; one that ends while the
// circuit is open (it started before) changes nothing: the probe decides.
func (b *breaker) record(ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		return
	}
	if ok {
		b.failures = 0
		return
	}
	b.failures++
	if b.failures >= b.threshold {
		b.trip("failures in a row", b.failures)
	}
}

func (b *breaker) probeDone(ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
	if ok {
		b.open, b.failures = false, 0
		b.logger.Info("agent circuit closed: the ping answered")
		return
	}
	b.trip("ping after the cool-down failed", 1)
}

func (b *breaker) probeAbandoned() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
}

// trip opens the circuit for a cool-down; b.mu is held.
func (b *breaker) trip(why string, failures int) {
	wait := b.coolDown
	if b.jitter > 0 {
		wait += time.Duration(rand.Float64() * b.jitter * float64(b.coolDown))
	}
	b.open, b.failures, b.openUntil = true, 0, b.clock.Now().Add(wait)
	b.logger.Warn("agent circuit open", "why", why, "failures", failures, "for", wait.Round(time.Millisecond))
}
