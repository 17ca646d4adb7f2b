package main

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// defaultGCPercent is GOGC when the environment sets none. The agent's live
// heap is small (3 to 8 MiB) and most of what it allocates is a scrape's
// garbage: at Go's default of 100 the heap grows to twice the live heap
// between collections, which was a third of the agent's RSS. At 50 it grows
// by half, for no measurable CPU per scrape (docs/performance.md). GOGC and
// GOMEMLIMIT in the environment still apply as Go defines them.
const defaultGCPercent = 50

// smallDaemonMemory applies the runtime settings of a small, long-running
// daemon, and drops the pages start-up alone needed (releaseStartupPages).
func smallDaemonMemory(logger *slog.Logger) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if n, err := releaseStartupPages(); err != nil {
		logger.Debug("release start-up pages", "err", err)
	} else {
		logger.Debug("released start-up pages", "bytes", n)
	}
}
