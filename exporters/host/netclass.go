package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/hybridsuite/hybrid/exporters"
)

// netclassCollector is node_exporter's netclass collector, in its default,
// sysfs flavour: the same series, names, help, labels and values, from the
// same files, reading each attribute as node_exporter does (the first 128
// bytes, spaces trimmed; numbers as strconv.ParseInt with base 0, 0 when they
// do not parse; a file that is missing, refuses access or answers EINVAL or
// EOPNOTSUPP leaves its series out). TestNetClass_SameAsNodeExporter holds it
// to that. What differs is the cost (see doc.go): node_exporter opens every
// file of every device on every scrape, this collector opens the 22 it reports
// once per device and re-reads them with pread (procfiles.go).
//
// And two failures are narrower: a device that disappears during a scrape is
// left out, where node_exporter drops every device's series for that scrape.
type netclassCollector struct {
	logger             *slog.Logger
	classNet           string // <SysFS>/class/net
	ignored            *regexp.Regexp
	ignoreInvalidSpeed bool

	upDesc, infoDesc *prometheus.Desc
	fieldDescs       [len(netNumAttrs)]*prometheus.Desc

	mu      sync.Mutex // one update at a time: they share the buffers and the open files
	dir     int        // classNet, open; -1 until the first update
	dirBuf  []byte
	buf     []byte
	names   []int                 // scratch: where each device listed by this update ends in nameBuf
	nameBuf []byte                // scratch: their names, one after the other
	devices map[string]*netDevice // the devices whose files are kept open
	maxKept int                   // devices
}

var _ exporters.Collector = (*netclassCollector)(nil)

// The attributes read, from /sys/class/net/<device>/.
var (
	netStrAttrs = [...]string{"address", "broadcast", "duplex", "operstate", "ifalias"}
	netNumAttrs = [...]string{
		"addr_assign_type", "carrier", "carrier_changes", "carrier_up_count", "carrier_down_count",
		"dev_id", "dormant", "flags", "ifindex", "iflink", "link_mode", "mtu", "name_assign_type",
		"netdev_group", "speed", "tx_queue_len", "type",
	}
)

// Indexes into netStrAttrs and netNumAttrs.
const (
	attrAddress = iota
	attrBroadcast
	attrDuplex
	attrOperstate
	attrIfalias
)

const (
	attrAddrAssignType = iota
	attrCarrier
	attrCarrierChanges
	attrCarrierUpCount
	attrCarrierDownCount
	attrDevID
	attrDormant
	attrFlags
	attrIfindex
	attrIflink
	attrLinkMode
	attrMTU
	attrNameAssignType
	attrNetdevGroup
	attrSpeed
	attrTxQueueLen
	attrType
)

// netNumMetrics is, in node_exporter's order, each numeric series: the
// attribute, the name after node_network_, and whether it is a counter.
var netNumMetrics = [...]struct {
	attr    int
	name    string
	counter bool
}{
	{attrAddrAssignType, "address_assign_type", false},
	{attrCarrier, "carrier", false},
	{attrCarrierChanges, "carrier_changes_total", true},
	{attrCarrierUpCount, "carrier_up_changes_total", true},
	{attrCarrierDownCount, "carrier_down_changes_total", true},
	{attrDevID, "device_id", false},
	{attrDormant, "dormant", false},
	{attrFlags, "flags", false},
	{attrIfindex, "iface_id", false},
	{attrIflink, "iface_link", false},
	{attrLinkMode, "iface_link_mode", false},
	{attrMTU, "mtu_bytes", false},
	{attrNameAssignType, "name_assign_type", false},
	{attrNetdevGroup, "net_dev_group", false},
	{attrSpeed, "speed_bytes", false},
	{attrTxQueueLen, "transmit_queue_length", false},
	{attrType, "protocol_type", false},
}

// netDevice is a device of the last update: its attribute files, open, and
// what was read from them.
type netDevice struct {
	name     string
	dev, ino uint64 // of its directory: a device renamed, or removed and made again, is another
	strFDs   [len(netStrAttrs)]int
	numFDs   [len(netNumAttrs)]int // -1: the device has no such attribute
	seen     bool

	// Read by the current update.
	str    [len(netStrAttrs)]string
	num    [len(netNumAttrs)]int64
	hasNum [len(netNumAttrs)]bool
}

// sysAttrSize is how much of an attribute node_exporter reads.
const sysAttrSize = 128

// maxKeptNetFiles caps how many attribute files stay open between scrapes
// (and an eighth of the open-file limit does): 22 per device. The devices
// beyond have theirs opened on every scrape.
const maxKeptNetFiles = 4096

// newNetclassCollector reads <sysFS>/class/net, configured as node_exporter's
// --collector.netclass.ignored-devices and ignore-invalid-speed would.
func newNetclassCollector(logger *slog.Logger, sysFS, ignoredDevices string, ignoreInvalidSpeed bool) (*netclassCollector, error) {
	ignored, err := regexp.Compile(ignoredDevices)
	if err != nil {
		return nil, fmt.Errorf("netclass ignored devices pattern: %w", err)
	}
	c := &netclassCollector{
		logger:             logger,
		classNet:           filepath.Join(sysFS, "class/net"),
		ignored:            ignored,
		ignoreInvalidSpeed: ignoreInvalidSpeed,
		upDesc: prometheus.NewDesc("node_network_up",
			"Value is 1 if operstate is 'up', 0 otherwise.", []string{"device"}, nil),
		infoDesc: prometheus.NewDesc("node_network_info",
			"Non-numeric data from /sys/class/net/<iface>, value is always 1.",
			[]string{"device", "address", "broadcast", "duplex", "operstate", "adminstate", "ifalias"}, nil),
		dir:     -1,
		buf:     make([]byte, sysAttrSize),
		devices: map[string]*netDevice{},
		maxKept: keptFiles(maxKeptNetFiles, 0.125) / (len(netStrAttrs) + len(netNumAttrs)),
	}
	for i, m := range netNumMetrics {
		c.fieldDescs[i] = prometheus.NewDesc("node_network_"+m.name,
			"Network device property: "+m.name, []string{"device"}, nil)
	}
	return c, nil
}

func (c *netclassCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()

	if c.dir < 0 {
		fd, err := openAt(unix.AT_FDCWD, c.classNet, unix.O_DIRECTORY)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			// What node_exporter reports as no data.
			c.logger.Debug("no network devices to read", "path", c.classNet, "err", err)
			return nil
		}
		if err != nil {
			return fmt.Errorf("open %s: %w", c.classNet, err)
		}
		c.dir = fd
	}
	if err := c.list(); err != nil {
		return fmt.Errorf("list %s: %w", c.classNet, err)
	}
	for _, d := range c.devices {
		d.seen = false
	}
	var read []*netDevice
	defer func() {
		for _, d := range read {
			if c.devices[d.name] != d {
				d.close() // not kept
			}
		}
	}()
	start := 0
	for _, end := range c.names {
		d, err := c.read(c.nameBuf[start:end])
		start = end
		if err != nil {
			return err
		}
		if d != nil {
			d.seen = true
			read = append(read, d)
		}
	}
	for name, d := range c.devices {
		if !d.seen {
			d.close()
			delete(c.devices, name)
		}
	}

	for _, d := range read {
		up := 0.0
		if d.str[attrOperstate] == "up" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.upDesc, prometheus.GaugeValue, up, d.name)
		admin := "unknown"
		if d.hasNum[attrFlags] {
			admin = "down"
			if d.num[attrFlags]&1 == 1 { // IFF_UP
				admin = "up"
			}
		}
		ch <- prometheus.MustNewConstMetric(c.infoDesc, prometheus.GaugeValue, 1, d.name,
			d.str[attrAddress], d.str[attrBroadcast], d.str[attrDuplex], d.str[attrOperstate], admin, d.str[attrIfalias])
		for i, m := range netNumMetrics {
			if !d.hasNum[m.attr] {
				continue
			}
			v := d.num[m.attr]
			if m.attr == attrSpeed {
				// Some devices answer -1 for an unknown speed.
				if v < 0 && c.ignoreInvalidSpeed {
					continue
				}
				// Megabits per second to bytes, in integers as
				// node_exporter computes it.
				v = v * 1000 * 1000 / 8
			}
			vt := prometheus.GaugeValue
			if m.counter {
				vt = prometheus.CounterValue
			}
			ch <- prometheus.MustNewConstMetric(c.fieldDescs[i], vt, float64(v), d.name)
		}
	}
	return nil
}

// list fills c.names with the devices to read: the entries of class/net that
// are not regular files (bonding_masters is one) and not ignored.
func (c *netclassCollector) list() error {
	c.names, c.nameBuf = c.names[:0], c.nameBuf[:0]
	var lstatErr error
	err := readDir(c.dir, &c.dirBuf, func(name []byte, typ uint8) {
		if typ == unix.DT_UNKNOWN {
			var st unix.Stat_t
			if err := unix.Fstatat(c.dir, string(name), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				if !errors.Is(err, unix.ENOENT) {
					lstatErr = err
				}
				return
			}
			if st.Mode&unix.S_IFMT == unix.S_IFREG {
				typ = unix.DT_REG
			}
		}
		if typ == unix.DT_REG || c.ignored.Match(name) {
			return
		}
		c.nameBuf = append(c.nameBuf, name...)
		c.names = append(c.names, len(c.nameBuf))
	})
	if err != nil {
		return err
	}
	return lstatErr
}

// read reads the attributes of the device called name, opening them when
// the name is new or now stands for another device. It returns nil when the
// device has gone.
func (c *netclassCollector) read(name []byte) (*netDevice, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(c.dir, string(name), &st, 0); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil, nil
		}
		return nil, fmt.Errorf("stat %s/%s: %w", c.classNet, name, err)
	}
	d := c.devices[string(name)]
	if d != nil && (d.dev != uint64(st.Dev) || d.ino != st.Ino) {
		d.close()
		delete(c.devices, d.name)
		d = nil
	}
	if d == nil {
		var err error
		if d, err = c.open(string(name)); d == nil || err != nil {
			return nil, err
		}
		if len(c.devices) < c.maxKept {
			c.devices[d.name] = d
		}
	}

	for i, fd := range d.strFDs {
		v, ok, err := c.readAttr(fd)
		if err != nil {
			return c.readFailed(d, netStrAttrs[i], err)
		}
		if !ok {
			v = nil
		}
		if string(v) != d.str[i] { // no allocation when unchanged
			d.str[i] = string(v)
		}
	}
	for i, fd := range d.numFDs {
		v, ok, err := c.readAttr(fd)
		if err != nil {
			return c.readFailed(d, netNumAttrs[i], err)
		}
		d.hasNum[i] = ok
		if ok {
			d.num[i] = parseSysInt(v)
		}
	}
	return d, nil
}

// readFailed handles an attribute that could not be read: a device removed
// meanwhile is left out; anything else fails the update, as in node_exporter.
func (c *netclassCollector) readFailed(d *netDevice, attr string, err error) (*netDevice, error) {
	d.close()
	if c.devices[d.name] == d {
		delete(c.devices, d.name)
	}
	if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	return nil, fmt.Errorf("read %s/%s/%s: %w", c.classNet, d.name, attr, err)
}

// open opens the attribute files of the device called name. It returns nil
// when the device has gone.
func (c *netclassCollector) open(name string) (*netDevice, error) {
	dirFD, err := openAt(c.dir, name, unix.O_DIRECTORY)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s/%s: %w", c.classNet, name, err)
	}
	defer closeFD(dirFD)
	var st unix.Stat_t
	if err := unix.Fstat(dirFD, &st); err != nil {
		return nil, fmt.Errorf("stat %s/%s: %w", c.classNet, name, err)
	}
	d := &netDevice{name: name, dev: uint64(st.Dev), ino: st.Ino}
	openAttr := func(attr string) (int, error) {
		fd, err := openAt(dirFD, attr, 0)
		if err != nil && !ignorableAttrErr(err) {
			return -1, fmt.Errorf("open %s/%s/%s: %w", c.classNet, name, attr, err)
		}
		return fd, nil // -1 on an ignorable error: the device lacks the attribute
	}
	for i, attr := range netStrAttrs {
		if d.strFDs[i], err = openAttr(attr); err != nil {
			d.close()
			return nil, err
		}
	}
	for i, attr := range netNumAttrs {
		if d.numFDs[i], err = openAttr(attr); err != nil {
			d.close()
			return nil, err
		}
	}
	return d, nil
}

// readAttr reads what node_exporter would of an attribute: its first 128
// bytes, spaces trimmed. ok is false when the device has no such attribute or
// the attribute has no value now (a device that is down answers EINVAL for
// carrier, speed, duplex and dormant).
func (c *netclassCollector) readAttr(fd int) (v []byte, ok bool, err error) {
	if fd < 0 {
		return nil, false, nil
	}
	for {
		n, err := unix.Pread(fd, c.buf[:sysAttrSize], 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			if ignorableAttrErr(err) {
				return nil, false, nil
			}
			return nil, false, err
		}
		return bytes.TrimSpace(c.buf[:n]), true, nil
	}
}

// ignorableAttrErr is the errors node_exporter's sysfs reader takes for "no
// such attribute": not found, no permission, not supported, invalid.
func ignorableAttrErr(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) ||
		errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL)
}

func (d *netDevice) close() {
	for i, fd := range d.strFDs {
		closeFD(fd)
		d.strFDs[i] = -1
	}
	for i, fd := range d.numFDs {
		closeFD(fd)
		d.numFDs[i] = -1
	}
}

// closeFiles closes the files kept open. A later update opens them again.
func (c *netclassCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, d := range c.devices {
		d.close()
		delete(c.devices, name)
	}
	closeFD(c.dir)
	c.dir = -1
}

// parseSysInt is strconv.ParseInt(s, 0, 64) as node_exporter applies it: 0
// when it fails. Plain decimals are parsed without allocating.
func parseSysInt(b []byte) int64 {
	digits := b
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		digits = b[1:]
	}
	// A leading 0 means octal or hex to ParseInt with base 0; more than 18
	// digits may overflow: both are left to strconv.
	if len(digits) > 0 && len(digits) <= 18 && (digits[0] != '0' || len(digits) == 1) {
		if v, ok := parseUint(digits); ok {
			if neg {
				return -int64(v)
			}
			return int64(v)
		}
	}
	v, err := strconv.ParseInt(string(b), 0, 64)
	if err != nil {
		return 0
	}
	return v
}
