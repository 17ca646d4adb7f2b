package host

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hybridsuite/hybrid/exporters"
)

// meminfoCollector is node_exporter's meminfo collector: node_memory_<field>
// for the fields of /proc/meminfo that node_exporter knows (meminfoMetrics),
// gauges, with node_exporter's help; a value in kB is reported in bytes except
// for HugePages_*, which are counts. Every line must parse (a number, then
// nothing or "kB"), known or not, or the update fails. The file is kept open
// and parsed in place; TestMeminfo_SameAsNodeExporter holds it to
// node_exporter's.
type meminfoCollector struct {
	mu     sync.Mutex
	file   *keptFile
	fields map[string]*meminfoField // by name, as in the file
	set    []*meminfoField          // scratch: the fields this update read, in order
}

var _ exporters.Collector = (*meminfoCollector)(nil)

type meminfoField struct {
	desc  *prometheus.Desc
	count bool // HugePages_*: the number in the file, whatever its unit
	value float64
	set   bool // read by this update
}

// meminfoMetrics maps the fields of /proc/meminfo that node_exporter reports
// to its metric names, less the "node_memory_" prefix. A name not ending in
// "_bytes" is reported as the number in the file.
var meminfoMetrics = map[string]string{
	"Active": "Active_bytes", "Active(anon)": "Active_anon_bytes", "Active(file)": "Active_file_bytes",
	"AnonHugePages": "AnonHugePages_bytes", "AnonPages": "AnonPages_bytes", "Bounce": "Bounce_bytes",
	"Buffers": "Buffers_bytes", "Cached": "Cached_bytes", "CmaFree": "CmaFree_bytes",
	"CmaTotal": "CmaTotal_bytes", "CommitLimit": "CommitLimit_bytes", "Committed_AS": "Committed_AS_bytes",
	"DirectMap1G": "DirectMap1G_bytes", "DirectMap2M": "DirectMap2M_bytes", "DirectMap4k": "DirectMap4k_bytes",
	"Dirty": "Dirty_bytes", "HardwareCorrupted": "HardwareCorrupted_bytes", "Hugepagesize": "Hugepagesize_bytes",
	"Inactive": "Inactive_bytes", "Inactive(anon)": "Inactive_anon_bytes", "Inactive(file)": "Inactive_file_bytes",
	"KernelStack": "KernelStack_bytes", "Mapped": "Mapped_bytes", "MemAvailable": "MemAvailable_bytes",
	"MemFree": "MemFree_bytes", "MemTotal": "MemTotal_bytes", "Mlocked": "Mlocked_bytes",
	"NFS_Unstable": "NFS_Unstable_bytes", "PageTables": "PageTables_bytes", "Percpu": "Percpu_bytes",
	"SReclaimable": "SReclaimable_bytes", "SUnreclaim": "SUnreclaim_bytes", "Shmem": "Shmem_bytes",
	"ShmemHugePages": "ShmemHugePages_bytes", "ShmemPmdMapped": "ShmemPmdMapped_bytes", "Slab": "Slab_bytes",
	"SwapCached": "SwapCached_bytes", "SwapFree": "SwapFree_bytes", "SwapTotal": "SwapTotal_bytes",
	"Unevictable": "Unevictable_bytes", "VmallocChunk": "VmallocChunk_bytes", "VmallocTotal": "VmallocTotal_bytes",
	"VmallocUsed": "VmallocUsed_bytes", "Writeback": "Writeback_bytes", "WritebackTmp": "WritebackTmp_bytes",
	"Zswap": "Zswap_bytes", "Zswapped": "Zswapped_bytes",
	"HugePages_Free": "HugePages_Free", "HugePages_Rsvd": "HugePages_Rsvd",
	"HugePages_Surp": "HugePages_Surp", "HugePages_Total": "HugePages_Total",
}

func newMeminfoCollector(procFS string) *meminfoCollector {
	fields := make(map[string]*meminfoField, len(meminfoMetrics))
	for field, name := range meminfoMetrics {
		fields[field] = &meminfoField{
			desc:  prometheus.NewDesc("node_memory_"+name, "Memory information field "+name+".", nil, nil),
			count: !strings.HasSuffix(name, "_bytes"),
		}
	}
	return &meminfoCollector{file: newKeptFile(filepath.Join(procFS, "meminfo"), false), fields: fields}
}

func (c *meminfoCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := c.file.read()
	if err != nil {
		return fmt.Errorf("read %s: %w", c.file.path, err)
	}
	for _, f := range c.set { // what an update that failed left
		f.set = false
	}
	c.set = c.set[:0]
	for len(data) > 0 {
		var line []byte
		line, data = cutLine(data)
		key, rest := nextField(line)
		num, rest := nextField(rest)
		unit, rest := nextField(rest)
		if extra, _ := nextField(rest); len(num) == 0 || len(extra) > 0 {
			return fmt.Errorf("parse %s: malformed line %q", c.file.path, line)
		}
		// As strconv.ParseUint(num, 0, 64), which node_exporter uses,
		// without its allocation for plain decimals.
		v, ok := parseUint(num)
		if !ok || (len(num) > 1 && num[0] == '0') {
			u, err := strconv.ParseUint(string(num), 0, 64)
			if err != nil {
				return fmt.Errorf("parse %s: %w", c.file.path, err)
			}
			v = u
		}
		bytesValue := v
		switch {
		case len(unit) == 0:
		case string(unit) == "kB":
			bytesValue = 1024 * v
		default:
			return fmt.Errorf("parse %s: unsupported unit in line %q", c.file.path, line)
		}
		name, colon := bytes.CutSuffix(key, []byte(":"))
		f := c.fields[string(name)]
		if f == nil || !colon {
			continue
		}
		if !f.count {
			v = bytesValue
		}
		if !f.set {
			c.set = append(c.set, f)
		}
		// A field listed twice is reported once, with its last value,
		// as node_exporter's map keeps it.
		f.value, f.set = float64(v), true
	}
	for _, f := range c.set {
		ch <- prometheus.MustNewConstMetric(f.desc, prometheus.GaugeValue, f.value)
		f.set = false
	}
	c.set = c.set[:0]
	return nil
}

func (c *meminfoCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.file.close()
}
