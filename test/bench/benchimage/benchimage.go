// Package benchimage builds the stand-in bench image (test/bench) into the
// local Docker engine, for tests that need a bench container: the machines
// that run the tests cannot pull a frappe/erpnext image, so this one is FROM
// scratch with the static bench binary, laid out like a real bench image:
//
//	/usr/local/bin/bench            the binary (PATH=/usr/local/bin)
//	/home/frappe/frappe-bench/      the working directory, owned 1000:1000
//	/home/frappe/frappe-bench/sites mount the bench's sites folder here
//	USER 1000:1000                  as frappe in the real image
//	CMD bench serve --port 8000     sites served by Host header
package benchimage

import (
	"context"
	"testing"

	"github.com/moby/moby/client"

	"github.com/hybridsuite/hybrid/test/dockertest"
)

const (
	// Tag is the image tag Build returns.
	Tag = "hybrid-test/bench:latest"
	// Package is the import path of the bench program.
	Package = "github.com/hybridsuite/hybrid/test/bench"
	// BenchDir is the bench folder (and working directory) in the image.
	BenchDir = "/home/frappe/frappe-bench"
	// SitesDir is where the bench's sites folder is to be mounted.
	SitesDir = BenchDir + "/sites"
	// User is the image's user, frappe's uid and gid in the real image.
	User = "1000:1000"
	// Port is the port the default command serves on.
	Port = 8000
)

const dockerfile = `FROM scratch
COPY bench /usr/local/bin/bench
COPY --chown=1000:1000 home /home
ENV PATH=/usr/local/bin
WORKDIR /home/frappe/frappe-bench
USER 1000:1000
EXPOSE 8000
CMD ["bench", "serve", "--port", "8000"]
`

var image = dockertest.StaticImage{
	Tag: Tag, Package: Package, Binary: "bench", Dockerfile: dockerfile,
	Dirs: []string{"home", "home/frappe", "home/frappe/frappe-bench", "home/frappe/frappe-bench/sites",
		"home/frappe/frappe-bench/archived_sites"},
}

// Build builds the image Tag (see test/dockertest.BuildStatic) and returns
// its id (sha256:...), which names this build whatever Tag is moved to
// later: test packages of other checkouts may build another binary under
// the same Tag while this test runs.
func Build(ctx context.Context, t testing.TB, cli *client.Client) string {
	t.Helper()
	tag := BuildAs(ctx, t, cli, Tag)
	res, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatalf("inspect image %s: %v", tag, err)
	}
	return res.ID
}

// BuildAs is Build under another tag, returning the tag. A test that needs
// this tree's test hooks uses its own tag: Tag is shared by every checkout on
// the Docker engine, and a concurrent test of another checkout may rebuild it.
func BuildAs(ctx context.Context, t testing.TB, cli *client.Client, tag string) string {
	t.Helper()
	img := image
	img.Tag = tag
	return dockertest.BuildStatic(ctx, t, cli, img)
}

// BuildImage is Build outside a test, returning the tag; dir is a scratch
// folder.
func BuildImage(ctx context.Context, cli *client.Client, dir string) (string, error) {
	return dockertest.Build(ctx, cli, image, dir)
}
