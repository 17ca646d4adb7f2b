// Package burnerimage builds the burner test image (test/burner) into the local
// Docker engine, for tests that need a real container: the machines that run
// the tests cannot pull images, so the image is FROM scratch with the static
// burner binary as its only file.
package burnerimage

import (
	"context"
	"testing"

	"github.com/moby/moby/client"

	"github.com/hybridsuite/hybrid/test/dockertest"
)

const (
	// Tag is the image tag Build returns.
	Tag = "hybrid-test/burner:latest"
	// Package is the import path of the burner program.
	Package = "github.com/hybridsuite/hybrid/test/burner"
)

// Build builds the image Tag (see test/dockertest.BuildStatic) and returns it.
func Build(ctx context.Context, t testing.TB, cli *client.Client) string {
	t.Helper()
	return dockertest.BuildStatic(ctx, t, cli, dockertest.StaticImage{
		Tag: Tag, Package: Package, Binary: "burner",
		Dockerfile: "FROM scratch\nCOPY burner /burner\nENTRYPOINT [\"/burner\"]\nCMD [\"idle\"]\n",
	})
}
