package names

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSite(t *testing.T) {
	for _, ok := range []string{"erp.example.com", "a.b", "x1-2.y-3.example.co.uk", strings.Repeat("a", 63) + ".com"} {
		require.NoError(t, Site(ok), ok)
	}
	for _, bad := range []string{"../x", "a;drop", strings.Repeat("a", 300), "Erp.example.com", "a b.com", "-a.com", "a-.com",
		"localhost", "a..b", ".a.b", "a.b.", strings.Repeat("a", 64) + ".com", "a/b.com", "a\x00.com", "$(x).com", ""} {
		err := Site(bad)
		require.Error(t, err, bad)
		require.Contains(t, err.Error(), "site name")
	}
}

func TestSite_IPLiteral_Refused(t *testing.T) {
	for _, ip := range []string{"127.0.0.1", "10.0.0.1", "192.168.1.254", "127.1", "0x7f.0.0.1", "::1", "[::1]", "fe80::1",
		"2001:db8::8a2e:370:7334", "::ffff:127.0.0.1", "[2001:db8::1]"} {
		err := Site(ip)
		require.Error(t, err, ip)
		require.Contains(t, err.Error(), "IP address", ip)
	}
	// Digits are fine in names that are not addresses.
	for _, ok := range []string{"1.example.com", "10.0.0.1.example.com", "123.45.example.org"} {
		require.NoError(t, Site(ok), ok)
	}
}

func TestBench(t *testing.T) {
	require.NoError(t, Bench("bench-1"))
	for _, bad := range []string{"", "-a", "A", "a_b", "a/b", "..", strings.Repeat("a", 64), "a b"} {
		require.Error(t, Bench(bad), bad)
	}
}

func TestJobIDAndImage(t *testing.T) {
	require.NoError(t, JobID("job-1.2_3"))
	require.Error(t, JobID("../etc"))
	require.Error(t, JobID(""))
	for _, ok := range []string{"hybrid-test/bench:latest", "frappe/erpnext:v15.0.1", "localhost:5000/x/y:1", "busybox@sha256:" + strings.Repeat("a", 64)} {
		require.NoError(t, Image(ok), ok)
	}
	for _, bad := range []string{"", "UPPER", "a b", "x;rm -rf /", "--privileged"} {
		require.Error(t, Image(bad), bad)
	}
}

func TestDatabaseName_SafeAndUnique(t *testing.T) {
	ident := regexp.MustCompile(`^[a-z0-9_]{1,58}$`)
	long1 := strings.Repeat("a", 60) + ".example.com"
	long2 := strings.Repeat("a", 60) + ".example.org"
	seen := map[string]string{}
	for _, s := range []string{"erp.example.com", "erp-example.com", long1, long2} {
		n := DatabaseName(s)
		require.Regexp(t, ident, n)
		require.NotContains(t, seen, n, "%s and %s share %s", s, seen[n], n)
		seen[n] = s
	}
}

func TestImage_ImageID_Accepted(t *testing.T) {
	require.NoError(t, Image("sha256:"+strings.Repeat("ab", 32)))
}

// A Frappe bench keeps files beside its sites whose names are DNS names: a
// site of that name would take the file's place, and a failed site.new's
// undo would remove the bench's file.
func TestSite_FrappeSitesFolderFile_Refused(t *testing.T) {
	for _, name := range []string{"apps.txt", "apps.json", "currentsite.txt", "languages.txt"} {
		err := Site(name)
		require.ErrorContains(t, err, "a file of Frappe's sites folder has this name", name)
	}
	require.NoError(t, Site("apps.txt.example.com"))
}
