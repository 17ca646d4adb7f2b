// Package names validates what becomes a path, an SQL identifier, a shell
// word or an nginx server_name: bench and site names, job ids, image
// references. Every check is a strict pattern; the error names the value.
package names

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

var (
	benchPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	labelPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	jobIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	// An image reference as Docker writes it: [registry/]repo[:tag][@digest].
	imagePattern = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`)
)

// Bench checks a bench name: lower-case letters, digits and dashes, at most 63.
func Bench(name string) error {
	if !benchPattern.MatchString(name) {
		return fmt.Errorf("bench name %q: want lower-case letters, digits and dashes, starting with a letter or digit, at most 63", clip(name))
	}
	return nil
}

// Site checks a site name: a lower-case DNS name of at least two labels, at
// most 253 characters, each label at most 63, and not an IP address. A site
// is served by its Host header: an IP literal as a name would take every
// request made to that address.
func Site(name string) error {
	bad := func(why string) error { return fmt.Errorf("site name %q: %s", clip(name), why) }
	if len(name) > 253 {
		return bad("longer than 253 characters")
	}
	if _, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil {
		return bad("an IP address is not a site name; want a DNS name such as erp.example.com")
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return bad("want a DNS name such as erp.example.com")
	}
	for _, l := range labels {
		if !labelPattern.MatchString(l) {
			return bad("each dot-separated label must be 1-63 lower-case letters, digits or inner dashes")
		}
	}
	// No top-level domain is all digits; resolvers read such names as
	// addresses ("127.1", "10.0.0.1").
	if allDigits(labels[len(labels)-1]) {
		return bad("the last label is all digits, so it reads as an IP address; want a DNS name such as erp.example.com")
	}
	if frappeFile(name) {
		return bad("a file of Frappe's sites folder has this name; a site there would take its place (and a failed site.new would remove it)")
	}
	return nil
}

// frappeFile says whether name is a file of a Frappe bench's sites folder,
// beside the sites, that is a valid DNS name.
func frappeFile(name string) bool {
	switch name {
	case "apps.txt", "apps.json", "currentsite.txt", "languages.txt":
		return true
	}
	return false
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// JobID checks a caller's job id.
func JobID(id string) error {
	if !jobIDPattern.MatchString(id) {
		return fmt.Errorf("job id %q: want letters, digits, dots, dashes and underscores, at most 128", clip(id))
	}
	return nil
}

// Image checks a Docker image reference.
func Image(ref string) error {
	if len(ref) > 255 || !imagePattern.MatchString(ref) {
		return fmt.Errorf("image %q: not a Docker image reference", clip(ref))
	}
	return nil
}

// DatabaseName is the MariaDB database and user of a site, derived from the
// site name: a readable prefix and a hash of the whole name, so it is always
// a safe identifier (lower-case letters, digits, underscores; at most 58
// characters) and two sites never share one.
func DatabaseName(site string) string {
	readable := strings.NewReplacer(".", "_", "-", "_").Replace(site)
	if len(readable) > 40 {
		readable = readable[:40]
	}
	sum := sha256.Sum256([]byte(site))
	return "site_" + readable + "_" + hex.EncodeToString(sum[:6])
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}
