package sitelog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Other is the site label of requests whose Host is none of the served
// sites.
const Other = "_other"

// bucketsMS are the duration histogram's upper bounds in milliseconds
// (nginx logs $request_time in ms): Prometheus' defaults, and up to the 300 s
// proxy_read_timeout of the site servers.
var bucketsMS = [...]uint64{5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000}

// siteStats are one site's counters. Guarded by Collector.mu.
type siteStats struct {
	codes   map[uint16]uint64
	buckets [len(bucketsMS) + 1]uint64 // not cumulative; the last is +Inf
	sumMS   uint64
}

func newSiteStats() *siteStats { return &siteStats{codes: map[uint16]uint64{}} }

func (s *siteStats) add(code int, ms uint64) {
	s.codes[uint16(code)]++
	i := 0
	for i < len(bucketsMS) && ms > bucketsMS[i] {
		i++
	}
	s.buckets[i]++
	s.sumMS += ms
}

// Options configure a Collector. Socket is required.
type Options struct {
	// Socket is the path of the unix datagram socket nginx sends its lines
	// to (the agent puts it in /run/hybrid-agent/<root hash>/).
	Socket string
	// GID, when positive, is the group that may send to the socket besides
	// root: that of nginx's workers, when they do not run as root. 0 or -1:
	// root only.
	GID int
	// QueueLength is the number of datagrams the socket holds before nginx
	// has to drop lines. Default 4096.
	QueueLength int
	// ReceiveBuffer is the socket's SO_RCVBUF. Default 4 MiB.
	ReceiveBuffer int
	Logger        *slog.Logger
}

// Collector receives nginx's lines and exports them as metrics. Create it
// with New, give it the served sites with SetSites, run it with Start.
type Collector struct {
	logger *slog.Logger
	sock   *socket

	mu     sync.Mutex
	sites  map[string]*siteStats
	other  *siteStats
	conns  [4096]connSlot // last request number seen per kept-alive connection
	lost   uint64
	bad    uint64
	closed chan struct{}
	done   chan struct{}
	once   sync.Once

	startMu sync.Mutex
	started bool

	readerTID atomic.Int64 // the reader's thread, for its CPU time

	requestsDesc, durationDesc, invalidDesc, lostDesc, cpuDesc *prometheus.Desc
}

type connSlot struct{ conn, reqs uint64 }

// New makes the socket; lines sent to it wait in its queue until Start.
func New(opts Options) (*Collector, error) {
	if opts.QueueLength <= 0 {
		opts.QueueLength = 4096
	}
	if opts.ReceiveBuffer <= 0 {
		opts.ReceiveBuffer = 4 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	sock, err := listen(opts)
	if err != nil {
		return nil, fmt.Errorf("site log socket: %w", err)
	}
	return &Collector{
		logger: opts.Logger,
		sock:   sock,
		sites:  map[string]*siteStats{},
		other:  newSiteStats(),
		closed: make(chan struct{}),
		done:   make(chan struct{}),
		requestsDesc: prometheus.NewDesc("hybrid_site_http_requests_total",
			"HTTP requests nginx served per site and status code; site=\"_other\" for a Host that is no served site.", []string{"site", "code"}, nil),
		durationDesc: prometheus.NewDesc("hybrid_site_http_request_duration_seconds",
			"Time nginx took to serve each site's requests ($request_time), first byte read to last byte sent.", []string{"site"}, nil),
		invalidDesc: prometheus.NewDesc("hybrid_site_log_lines_invalid_total",
			"Datagrams on the site log socket that are no access log line of the expected format.", nil, nil),
		lostDesc: prometheus.NewDesc("hybrid_site_log_lines_lost_total",
			"Access log lines nginx could not hand over, as far as they show: gaps in the request numbers of a kept-alive connection (a lower bound).", nil, nil),
		cpuDesc: prometheus.NewDesc("hybrid_site_log_reader_cpu_seconds_total",
			"CPU time the thread that reads and counts the access log lines has used.", nil, nil),
	}, nil
}

// SetSites sets the sites whose requests are counted under their own name;
// requests for any other Host count as Other. The counters of a site that
// stays keep going; those of a site no longer served are dropped.
func (c *Collector) SetSites(names []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sites := make(map[string]*siteStats, len(names))
	for _, n := range names {
		if s, ok := c.sites[n]; ok {
			sites[n] = s
		} else {
			sites[n] = newSiteStats()
		}
	}
	c.sites = sites
}

// Start runs the reader until ctx ends or Close.
func (c *Collector) Start(ctx context.Context) {
	c.startMu.Lock()
	defer c.startMu.Unlock()
	if c.started || c.isClosed() {
		return
	}
	c.started = true
	go func() {
		select {
		case <-ctx.Done():
			c.Close()
		case <-c.closed:
		}
	}()
	go func() {
		defer close(c.done)
		c.read()
	}()
}

// Close stops the reader and removes the socket.
func (c *Collector) Close() error {
	var err error
	c.once.Do(func() {
		c.startMu.Lock()
		defer c.startMu.Unlock()
		close(c.closed)
		err = c.sock.close()
		if !c.started { // no reader to close the descriptor
			c.sock.closeFD()
			close(c.done)
		}
	})
	return err
}

func (c *Collector) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// Socket is the path of the socket.
func (c *Collector) Socket() string { return c.sock.path }

// Wait returns when the reader has stopped (after Close); for tests.
func (c *Collector) Wait() { <-c.done }

// count adds one datagram.
func (c *Collector) count(b []byte) {
	l, ok := parseLine(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		c.bad++
		return
	}
	s := c.sites[string(l.host)] // no allocation: the conversion is only a key
	if s == nil {
		s = c.other
	}
	s.add(l.code, l.ms)
	if l.http1 {
		c.lost += c.track(l.conn, l.reqs)
	}
}

// track returns how many requests of connection conn were skipped since the
// last line seen of it. A connection's lines come from one worker, in order,
// through one queue; a slot taken over by another connection forgets, so
// this is a lower bound.
func (c *Collector) track(conn, reqs uint64) uint64 {
	slot := &c.conns[conn%uint64(len(c.conns))]
	var gap uint64
	if slot.conn == conn && reqs > slot.reqs+1 {
		gap = reqs - slot.reqs - 1
	}
	if slot.conn != conn || reqs > slot.reqs {
		slot.conn, slot.reqs = conn, reqs
	}
	return gap
}

// ReaderCPU is the CPU time the reader's thread has used.
func (c *Collector) ReaderCPU() (time.Duration, error) {
	tid := c.readerTID.Load()
	if tid == 0 {
		return 0, errors.New("site log reader not running")
	}
	return threadCPU(int(tid))
}

// Update sends the counters.
func (c *Collector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	type snap struct {
		site string
		s    siteStats
	}
	c.mu.Lock()
	snaps := make([]snap, 0, len(c.sites)+1)
	for name, s := range c.sites {
		snaps = append(snaps, snap{name, siteStats{codes: maps.Clone(s.codes), buckets: s.buckets, sumMS: s.sumMS}})
	}
	snaps = append(snaps, snap{Other, siteStats{codes: maps.Clone(c.other.codes), buckets: c.other.buckets, sumMS: c.other.sumMS}})
	bad, lost := c.bad, c.lost
	c.mu.Unlock()

	for _, sn := range snaps {
		codes := make([]uint16, 0, len(sn.s.codes))
		for code := range sn.s.codes {
			codes = append(codes, code)
		}
		slices.Sort(codes)
		for _, code := range codes {
			ch <- prometheus.MustNewConstMetric(c.requestsDesc, prometheus.CounterValue, float64(sn.s.codes[code]), sn.site, codeLabel(code))
		}
		buckets := make(map[float64]uint64, len(bucketsMS))
		var cum uint64
		for i, ub := range bucketsMS {
			cum += sn.s.buckets[i]
			buckets[float64(ub)/1000] = cum
		}
		cum += sn.s.buckets[len(bucketsMS)]
		ch <- prometheus.MustNewConstHistogram(c.durationDesc, cum, float64(sn.s.sumMS)/1000, buckets, sn.site)
	}
	ch <- prometheus.MustNewConstMetric(c.invalidDesc, prometheus.CounterValue, float64(bad))
	ch <- prometheus.MustNewConstMetric(c.lostDesc, prometheus.CounterValue, float64(lost))
	if cpu, err := c.ReaderCPU(); err == nil {
		ch <- prometheus.MustNewConstMetric(c.cpuDesc, prometheus.CounterValue, cpu.Seconds())
	}
	return nil
}

// codeLabel is a status code as nginx logs it: three digits.
func codeLabel(code uint16) string {
	s := strconv.Itoa(int(code))
	for len(s) < 3 {
		s = "0" + s
	}
	return s
}
