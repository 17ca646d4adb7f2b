//go:build linux

package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func rssFileKiB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// TestReleaseStartupPages_ExecutableUnmapped_StillRuns: the pages of the
// process's own executable leave its RSS, and code and read-only data come
// back as they are used (the test goes on running, and the data it reads is
// intact).
func TestReleaseStartupPages_ExecutableUnmapped_StillRuns(t *testing.T) {
	before := rssFileKiB(t)
	released, err := releaseStartupPages()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFileKiB(t)
	if released <= 0 {
		t.Fatalf("released %d bytes: no mapping of the executable found", released)
	}
	if after >= before {
		t.Errorf("RssFile %d KiB after the release, %d KiB before: nothing left the RSS", after, before)
	}
	if got := strconv.FormatFloat(0.25, 'f', -1, 64); got != "0.25" { // code and tables paged back in
		t.Fatalf("FormatFloat after the release: %q", got)
	}
	t.Logf("released %d MiB of mappings; RssFile %d KiB -> %d KiB", released>>20, before, after)
}
