package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/hybridsuite/hybrid/exporters"
)

// netstatCollector is node_exporter's netstat collector: node_netstat_<Proto>_<Field>
// for each field of /proc/net/netstat, /proc/net/snmp and /proc/net/snmp6 that
// matches --collector.netstat.fields, untyped, with node_exporter's help; a
// protocol found in a later file replaces the same protocol of an earlier one,
// as node_exporter merges them; a value that is not a number fails the update,
// matched or not; a missing snmp6 (IPv6 disabled) is no error.
// TestNetstat_SameAsNodeExporter holds it to that. What differs is the cost
// (see doc.go): node_exporter builds a map of strings per file, a descriptor per
// series and runs its regexp over every field on every scrape; this collector
// keeps the three files open (procfiles.go), parses them in place, and matches
// each field name, and builds its descriptor, once.
type netstatCollector struct {
	files  [3]string // netstat, snmp, snmp6, under ProcFS
	fields *regexp.Regexp

	mu     sync.Mutex // one update at a time: they share the files, buffers and fields
	fds    [3]int     // -1 until opened
	bufs   [3][]byte
	protos map[string]*netstatProto
	update uint64
	set    []*netstatField // scratch: the fields this update assigned, in order
	seen6  []*netstatProto // scratch: the protocols found in snmp6 so far
}

var _ exporters.Collector = (*netstatCollector)(nil)

// netstatProto is a protocol (Ip, TcpExt, Udp6...) and the fields seen of it.
type netstatProto struct {
	name   string
	fields map[string]*netstatField
}

// netstatField is a field, with what this update read of it.
type netstatField struct {
	desc  *prometheus.Desc // nil when the field pattern does not match
	value float64
	set   uint64 // the update that assigned value
}

const (
	netstatFile = iota
	snmpFile
	snmp6File
)

func newNetstatCollector(procFS, fieldPattern string) (*netstatCollector, error) {
	re, err := regexp.Compile(fieldPattern)
	if err != nil {
		return nil, fmt.Errorf("netstat fields pattern: %w", err)
	}
	return &netstatCollector{
		files: [3]string{
			filepath.Join(procFS, "net/netstat"),
			filepath.Join(procFS, "net/snmp"),
			filepath.Join(procFS, "net/snmp6"),
		},
		fields: re,
		fds:    [3]int{-1, -1, -1},
		protos: map[string]*netstatProto{},
	}, nil
}

func (c *netstatCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.update++
	c.set = c.set[:0]
	for i := range c.files {
		data, err := c.read(i)
		if i == snmp6File && errors.Is(err, unix.ENOENT) {
			break // IPv6 disabled
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", c.files[i], err)
		}
		if i == snmp6File {
			err = c.parseSNMP6(data)
		} else {
			err = c.parseTable(data)
		}
		if err != nil {
			return fmt.Errorf("parse %s: %w", c.files[i], err)
		}
	}
	for _, f := range c.set {
		// A field replaced by a later block (set to 0) is not sent, and
		// one listed twice is sent once.
		if f.desc != nil && f.set == c.update {
			ch <- prometheus.MustNewConstMetric(f.desc, prometheus.UntypedValue, f.value)
			f.set = 0
		}
	}
	return nil
}

// read reads file i through the file kept open, opening it first if needed.
func (c *netstatCollector) read(i int) ([]byte, error) {
	if c.fds[i] < 0 {
		fd, err := openAt(unix.AT_FDCWD, c.files[i], 0)
		if err != nil {
			return nil, err
		}
		c.fds[i] = fd
		if len(c.bufs[i]) == 0 {
			c.bufs[i] = make([]byte, 16<<10)
		}
	}
	data, err := preadAll(c.fds[i], &c.bufs[i])
	if err != nil {
		closeFD(c.fds[i])
		c.fds[i] = -1
	}
	return data, err
}

// parseTable parses the pairs of lines of /proc/net/netstat and snmp:
// "Proto: Name1 Name2 ..." then "Proto: value1 value2 ...", split on single
// spaces as node_exporter does.
func (c *netstatCollector) parseTable(data []byte) error {
	for len(data) > 0 {
		var names, values []byte
		names, data = cutLine(data)
		values, data = cutLine(data)
		proto, names, _ := bytes.Cut(names, []byte(" "))
		_, values, _ = bytes.Cut(values, []byte(" "))
		if len(proto) == 0 {
			return errors.New("line without a protocol")
		}
		p := c.proto(proto[:len(proto)-1]) // without its ':'
		p.clear(c.update)
		if bytes.Count(names, []byte(" ")) != bytes.Count(values, []byte(" ")) {
			return fmt.Errorf("field count mismatch: %s", p.name)
		}
		for len(names) > 0 || len(values) > 0 {
			var name, value []byte
			name, names, _ = bytes.Cut(names, []byte(" "))
			value, values, _ = bytes.Cut(values, []byte(" "))
			if err := c.assign(p, name, value); err != nil {
				return err
			}
		}
	}
	return nil
}

// parseSNMP6 parses /proc/net/snmp6: "Ip6InReceives <spaces> 123" per line,
// the protocol being the name up to its first "6"; other lines are skipped.
func (c *netstatCollector) parseSNMP6(data []byte) error {
	c.seen6 = c.seen6[:0]
	for len(data) > 0 {
		var line []byte
		line, data = cutLine(data)
		key, rest := nextField(line)
		value, _ := nextField(rest)
		if len(value) == 0 {
			continue
		}
		six := bytes.IndexByte(key, '6')
		if six < 0 {
			continue
		}
		p := c.proto(key[:six+1])
		if !slices.Contains(c.seen6, p) {
			// Replaces the protocol of an earlier file; later lines
			// of the same protocol add to it.
			p.clear(c.update)
			c.seen6 = append(c.seen6, p)
		}
		if err := c.assign(p, key[six+1:], value); err != nil {
			return err
		}
	}
	return nil
}

// nextField is the first field of b, separated by white space as
// strings.Fields separates them, and what follows it.
func nextField(b []byte) (field, rest []byte) {
	isSpace := func(ch byte) bool {
		return ch == ' ' || ch == '\t' || ch == '\v' || ch == '\f' || ch == '\r' || ch == '\n'
	}
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	j := i
	for j < len(b) && !isSpace(b[j]) {
		j++
	}
	return b[i:j], b[j:]
}

func cutLine(b []byte) (line, rest []byte) {
	line, rest, _ = bytes.Cut(b, []byte("\n"))
	return line, rest
}

func (c *netstatCollector) proto(name []byte) *netstatProto {
	p := c.protos[string(name)]
	if p == nil {
		p = &netstatProto{name: string(name), fields: map[string]*netstatField{}}
		c.protos[p.name] = p
	}
	return p
}

// clear forgets what this update assigned to the protocol's fields so far:
// a later block of the same protocol replaces them.
func (p *netstatProto) clear(update uint64) {
	for _, f := range p.fields {
		if f.set == update {
			f.set = 0
		}
	}
}

func (c *netstatCollector) assign(p *netstatProto, name, value []byte) error {
	v, err := parseNetstatValue(value)
	if err != nil {
		return fmt.Errorf("invalid value %s in netstats: %w", value, err)
	}
	f := p.fields[string(name)]
	if f == nil {
		key := p.name + "_" + string(name)
		f = &netstatField{}
		if c.fields.MatchString(key) {
			f.desc = prometheus.NewDesc("node_netstat_"+key, "Statistic "+p.name+string(name)+".", nil, nil)
		}
		p.fields[string(name)] = f
	}
	if f.set != c.update {
		c.set = append(c.set, f)
	}
	f.value, f.set = v, c.update
	return nil
}

// parseNetstatValue is strconv.ParseFloat, without allocating for the
// integers the files hold.
func parseNetstatValue(b []byte) (float64, error) {
	digits := b
	if len(b) > 0 && b[0] == '-' {
		digits = b[1:]
	}
	if len(digits) <= 15 { // exact in a float64
		if v, ok := parseUint(digits); ok {
			if len(digits) < len(b) {
				return -float64(v), nil
			}
			return float64(v), nil
		}
	}
	return strconv.ParseFloat(string(b), 64)
}

// close closes the files kept open. A later update opens them again.
func (c *netstatCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, fd := range c.fds {
		closeFD(fd)
		c.fds[i] = -1
	}
}
