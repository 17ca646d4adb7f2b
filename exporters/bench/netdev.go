package bench

import (
	"bytes"
	"fmt"
)

// readNetDev sums received and transmitted bytes over every interface but the
// loopback in a /proc/<pid>/net/dev file, which shows the network namespace
// of that process: the container's own interfaces when it has a private
// network, the host's when it runs with --network host.
func readNetDev(path string, buf []byte) (rx, tx uint64, err error) {
	b, err := readFile(path, buf)
	if err != nil {
		return 0, 0, err
	}
	// Two header lines, then "  eth0: rxbytes rxpackets ... txbytes ...".
	for range 2 {
		_, b = nextLine(b)
	}
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		if string(bytes.TrimSpace(line[:colon])) == "lo" {
			continue
		}
		rest := line[colon+1:]
		var f []byte
		for i := 0; i < 9; i++ {
			f, rest = nextField(rest)
			switch i {
			case 0:
				v, err := parseUintBytes(f)
				if err != nil {
					return 0, 0, fmt.Errorf("parse %s: receive bytes: %w", path, err)
				}
				rx += v
			case 8:
				v, err := parseUintBytes(f)
				if err != nil {
					return 0, 0, fmt.Errorf("parse %s: transmit bytes: %w", path, err)
				}
				tx += v
			}
		}
	}
	return rx, tx, nil
}
