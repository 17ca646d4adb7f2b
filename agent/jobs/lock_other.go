//go:build !unix

package jobs

import "os"

// lockFile does nothing where flock is missing: the agent runs on Linux.
func lockFile(string) (*os.File, error) { return nil, nil }

func unlockFile(*os.File) {}
