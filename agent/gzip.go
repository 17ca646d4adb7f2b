package agent

import (
	"net/http"
	"strings"

	"github.com/klauspost/compress/gzip"
)

// fastGzip compresses responses at gzip's fastest level when the client
// accepts gzip. promhttp's default level costs about a sixth of a scrape's
// CPU; the fastest level makes the exposition about a quarter larger, which
// on loopback or a LAN costs nothing.
//
// klauspost/compress at its fastest level: a third of the standard library's
// CPU and 800 KiB of state instead of 1.2 MiB. Up to two writers are kept for
// reuse in a free list rather than a sync.Pool, which drops them at every GC
// cycle: a small heap is collected every few scrapes, and each new writer was
// a megabyte more to collect.
func fastGzip(next http.Handler) http.Handler {
	free := make(chan *gzip.Writer, 2)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !acceptsGzip(r.Header.Get("Accept-Encoding")) {
			next.ServeHTTP(w, r)
			return
		}
		var gz *gzip.Writer
		select {
		case gz = <-free:
		default:
			gz, _ = gzip.NewWriterLevel(nil, gzip.BestSpeed)
		}
		defer func() {
			select {
			case free <- gz:
			default:
			}
		}()
		gz.Reset(w)
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Add("Vary", "Accept-Encoding")
		next.ServeHTTP(gzipResponseWriter{ResponseWriter: w, gz: gz}, r)
		gz.Close()
	})
}

func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") && !strings.Contains(strings.ReplaceAll(params, " ", ""), "q=0") {
			return true
		}
	}
	return false
}

type gzipResponseWriter struct {
	http.ResponseWriter
	gz *gzip.Writer
}

func (w gzipResponseWriter) Write(p []byte) (int, error) { return w.gz.Write(p) }

func (w gzipResponseWriter) WriteHeader(code int) {
	w.Header().Del("Content-Length")
	w.ResponseWriter.WriteHeader(code)
}
