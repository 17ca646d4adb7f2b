// Package burnerimage builds the burner test image (test/burner) into the local
// Docker engine, for tests that need a real container: the machines that run
// the tests cannot pull images, so the image is FROM scratch with the static
// burner binary as its only file.
package burnerimage

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

	"github.com/moby/moby/client"
)

const (
	// Tag is the image tag Build returns.
	Tag = "hybrid-test/burner:latest"
	// Package is the import path of the burner program.
	Package = "github.com/hybridsuite/hybrid/test/burner"

	// digestLabel holds the SHA-256 of the binary in the image, so a later
	// Build with an unchanged binary skips the image build.
	digestLabel = "io.hybrid.test.burner.sha256"
)

// Build compiles the burner binary (static, CGO_ENABLED=0) into t.TempDir() and
// builds the image Tag from it, unless the engine already holds an image with
// that tag built from the same binary. It returns the tag and fails the test
// on any error. Several test packages may call it concurrently: each build
// produces the same image and the tag ends on one of them.
func Build(ctx context.Context, t testing.TB, cli *client.Client) string {
	t.Helper()
	bin, err := compile(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("build burner binary: %v", err)
	}
	sum := sha256.Sum256(bin)
	digest := hex.EncodeToString(sum[:])

	if res, err := cli.ImageInspect(ctx, Tag); err == nil && res.Config != nil && res.Config.Labels[digestLabel] == digest {
		return Tag
	}
	if err := buildImage(ctx, cli, bin, digest); err != nil {
		t.Fatalf("build image %s: %v", Tag, err)
	}
	return Tag
}

// compile runs go build for the burner package and returns the binary.
func compile(ctx context.Context, dir string) ([]byte, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("find the go command: %w", err)
	}
	out := filepath.Join(dir, "burner")
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, Package)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %w\n%s", Package, err, msg)
	}
	return os.ReadFile(out)
}

// buildImage sends a build context of a Dockerfile and the binary to the
// engine and waits for the build to finish.
func buildImage(ctx context.Context, cli *client.Client, bin []byte, digest string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dockerfile := "FROM scratch\nCOPY burner /burner\nENTRYPOINT [\"/burner\"]\nCMD [\"idle\"]\n"
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte(dockerfile)},
		{"burner", 0o755, bin},
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			return fmt.Errorf("write build context: %w", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return fmt.Errorf("write build context: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write build context: %w", err)
	}

	res, err := cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{
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
			Stream      string `json:"stream"`
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
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
