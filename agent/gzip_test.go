package agent

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFastGzip_CompressesOnlyWhenAccepted(t *testing.T) {
	body := strings.Repeat("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 1234.5\n", 200)
	h := fastGzip(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) }))

	for _, tc := range []struct {
		accept  string
		gzipped bool
	}{
		{"gzip", true},
		{"deflate, gzip;q=1.0", true},
		{"GZIP", true},
		{"gzip;q=0", false},
		{"identity", false},
		{"", false},
	} {
		t.Run(tc.accept, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			req.Header.Set("Accept-Encoding", tc.accept)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			got := rec.Body.String()
			if tc.gzipped {
				require.Equal(t, "gzip", rec.Header().Get("Content-Encoding"))
				zr, err := gzip.NewReader(rec.Body)
				require.NoError(t, err)
				plain, err := io.ReadAll(zr)
				require.NoError(t, err)
				got = string(plain)
				require.Less(t, rec.Body.Len(), len(body))
			} else {
				require.Empty(t, rec.Header().Get("Content-Encoding"))
			}
			require.Equal(t, body, got)
		})
	}
}
