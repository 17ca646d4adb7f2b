package sitelog

import "bytes"

// line is one parsed access log line. host points into the datagram.
type line struct {
	code       int    // $status, 0-999
	ms         uint64 // $request_time in milliseconds
	conn, reqs uint64 // $connection, $connection_requests
	http1      bool   // $server_protocol is HTTP/1.x: requests of a connection are logged in order
	host       []byte // $host, last
}

// The syslog header nginx puts before the message, with nohostname:
// "<190>Dec  4 14:40:00 hybrid: ". The message starts after the first ": ",
// which the timestamp (hh:mm:ss then a space) cannot hold.
var (
	headerEnd = []byte(": ")
	version   = []byte("v1 ")
)

// parseLine reads a datagram of the format agent/nginx renders
// ('v1 $status $request_time $connection $connection_requests
// $server_protocol $host'). It allocates nothing.
func parseLine(b []byte) (l line, ok bool) {
	i := bytes.Index(b, headerEnd)
	if i < 0 {
		return l, false
	}
	b = b[i+len(headerEnd):]
	if !bytes.HasPrefix(b, version) {
		return l, false
	}
	b = b[len(version):]

	// $status: exactly three digits.
	if len(b) < 4 || !digit(b[0]) || !digit(b[1]) || !digit(b[2]) || b[3] != ' ' {
		return l, false
	}
	l.code = int(b[0]-'0')*100 + int(b[1]-'0')*10 + int(b[2]-'0')
	b = b[4:]

	// $request_time: seconds with exactly three decimals.
	secs, b, ok := number(b, '.')
	if !ok || len(b) < 4 || !digit(b[0]) || !digit(b[1]) || !digit(b[2]) || b[3] != ' ' {
		return l, false
	}
	l.ms = secs*1000 + uint64(b[0]-'0')*100 + uint64(b[1]-'0')*10 + uint64(b[2]-'0')
	b = b[4:]

	if l.conn, b, ok = number(b, ' '); !ok {
		return l, false
	}
	if l.reqs, b, ok = number(b, ' '); !ok {
		return l, false
	}
	sp := bytes.IndexByte(b, ' ')
	if sp < 0 {
		return l, false
	}
	l.http1 = bytes.HasPrefix(b[:sp], []byte("HTTP/1."))
	l.host = bytes.TrimRight(b[sp+1:], "\n")
	return l, len(l.host) > 0
}

func digit(c byte) bool { return c >= '0' && c <= '9' }

// number reads decimal digits up to sep and returns the rest after sep. At
// most 18 digits, so it cannot overflow.
func number(b []byte, sep byte) (uint64, []byte, bool) {
	var n uint64
	for i, c := range b {
		switch {
		case digit(c) && i < 18:
			n = n*10 + uint64(c-'0')
		case c == sep && i > 0:
			return n, b[i+1:], true
		default:
			return 0, nil, false
		}
	}
	return 0, nil, false
}
