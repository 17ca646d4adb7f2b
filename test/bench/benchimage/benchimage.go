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
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/client"
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

	// digestLabel holds the SHA-256 of the build context (binary and
	// Dockerfile), so a later Build with nothing changed skips the build.
	digestLabel = "io.hybrid.test.bench.sha256"
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

// Build compiles the bench binary (static, CGO_ENABLED=0) into t.TempDir()
// and builds the image Tag from it, unless the engine already holds an image
// with that tag built from the same context. It returns the tag and fails the
// test on any error. Several test packages may call it concurrently: each
// build produces the same image and the tag ends on one of them.
func Build(ctx context.Context, t testing.TB, cli *client.Client) string {
	t.Helper()
	bin, err := compile(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("build bench binary: %v", err)
	}
	buildCtx, err := buildContext(bin)
	if err != nil {
		t.Fatalf("make build context: %v", err)
	}
	sum := sha256.Sum256(buildCtx)
	digest := hex.EncodeToString(sum[:])

	if res, err := cli.ImageInspect(ctx, Tag); err == nil && res.Config != nil && res.Config.Labels[digestLabel] == digest {
		return Tag
	}
	if err := buildImage(ctx, cli, buildCtx, digest); err != nil {
		t.Fatalf("build image %s: %v", Tag, err)
	}
	return Tag
}

// compile runs go build for the bench package and returns the binary.
func compile(ctx context.Context, dir string) ([]byte, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("find the go command: %w", err)
	}
	out := filepath.Join(dir, "bench")
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, Package)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %w\n%s", Package, err, msg)
	}
	return os.ReadFile(out)
}

// buildContext is a tar of the Dockerfile, the binary and the home tree.
// Its entries carry a fixed time so the same binary gives the same digest.
func buildContext(bin []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	entries := []struct {
		name string
		mode int64
		data []byte
		dir  bool
	}{
		{name: "Dockerfile", mode: 0o644, data: []byte(dockerfile)},
		{name: "bench", mode: 0o755, data: bin},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/frappe/", mode: 0o755, dir: true},
		{name: "home/frappe/frappe-bench/", mode: 0o755, dir: true},
		{name: "home/frappe/frappe-bench/sites/", mode: 0o755, dir: true},
		{name: "home/frappe/frappe-bench/archived_sites/", mode: 0o755, dir: true},
	}
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.data)), ModTime: epoch, Typeflag: tar.TypeReg}
		if e.dir {
			hdr.Typeflag, hdr.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// buildImage sends the build context to the engine and waits for the build.
func buildImage(ctx context.Context, cli *client.Client, buildCtx []byte, digest string) error {
	res, err := cli.ImageBuild(ctx, bytes.NewReader(buildCtx), client.ImageBuildOptions{
		Tags:        []string{Tag},
		Labels:      map[string]string{digestLabel: digest},
		Remove:      true,
		ForceRemove: true,
		Dockerfile:  "Dockerfile",
	})
	if err != nil {
		return fmt.Errorf("start image build: %w", err)
	}
	defer res.Body.Close()
	return readBuildOutput(res.Body)
}

// readBuildOutput drains the build's JSON message stream; the build has
// failed when a message carries an error, whatever the HTTP status said.
func readBuildOutput(r io.Reader) error {
	dec := json.NewDecoder(r)
	var log bytes.Buffer
	for {
		var msg struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read build output: %w", err)
		}
		log.WriteString(msg.Stream)
		if msg.Error != "" {
			return fmt.Errorf("engine reported: %s\n%s", msg.Error, log.String())
		}
	}
}
