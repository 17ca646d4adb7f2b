package dockertest

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
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// StaticImage is an image FROM scratch holding one static Go program: the
// machines that run the tests cannot pull images.
type StaticImage struct {
	Tag     string // e.g. hybrid-test/bench:latest
	Package string // import path of the program
	Binary  string // its file name in the build context, for the Dockerfile's COPY
	// Dockerfile copies Binary where the image wants it.
	Dockerfile string
	// Dirs are empty folders added to the build context (e.g. "home/frappe/"),
	// for the Dockerfile to COPY with an owner.
	Dirs []string
}

// digestLabel holds the SHA-256 of the build context, so a later build with
// nothing changed is skipped.
const digestLabel = "io.hybrid.test.context.sha256"

// BuildStatic compiles the program (CGO_ENABLED=0) and builds the image,
// unless the engine holds one built from the same context. It returns the tag.
// Several test packages may call it at once: each build gives the same image.
func BuildStatic(ctx context.Context, t testing.TB, cli *client.Client, img StaticImage) string {
	t.Helper()
	tag, err := Build(ctx, cli, img, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

// Build is BuildStatic outside a test (`make run` builds the stand-in bench
// image with it); dir is a scratch folder for the compiled program.
func Build(ctx context.Context, cli *client.Client, img StaticImage, dir string) (string, error) {
	bin, err := compile(ctx, dir, img)
	if err != nil {
		return "", fmt.Errorf("build %s: %w", img.Package, err)
	}
	buildCtx, err := buildContext(img, bin)
	if err != nil {
		return "", fmt.Errorf("make build context of %s: %w", img.Tag, err)
	}
	sum := sha256.Sum256(buildCtx)
	digest := hex.EncodeToString(sum[:])
	if res, err := cli.ImageInspect(ctx, img.Tag); err == nil && res.Config != nil && res.Config.Labels[digestLabel] == digest {
		return img.Tag, nil
	}
	res, err := cli.ImageBuild(ctx, bytes.NewReader(buildCtx), client.ImageBuildOptions{
		Tags:        []string{img.Tag},
		Labels:      map[string]string{digestLabel: digest},
		Remove:      true,
		ForceRemove: true,
		Dockerfile:  "Dockerfile",
	})
	if err != nil {
		return "", fmt.Errorf("build image %s: %w", img.Tag, err)
	}
	defer res.Body.Close()
	if err := readBuildOutput(res.Body); err != nil {
		return "", fmt.Errorf("build image %s: %w", img.Tag, err)
	}
	return img.Tag, nil
}

func compile(ctx context.Context, dir string, img StaticImage) ([]byte, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("find the go command: %w", err)
	}
	out := filepath.Join(dir, img.Binary)
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, img.Package)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %w\n%s", img.Package, err, msg)
	}
	return os.ReadFile(out)
}

// buildContext is a tar of the Dockerfile, the binary and the folders; its
// entries carry a fixed time, so the same inputs give the same digest.
func buildContext(img StaticImage, bin []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	add := func(hdr *tar.Header, data []byte) error {
		hdr.ModTime = epoch
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	err := errors.Join(
		add(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(img.Dockerfile)), Typeflag: tar.TypeReg}, []byte(img.Dockerfile)),
		add(&tar.Header{Name: img.Binary, Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg}, bin),
	)
	for _, d := range img.Dirs {
		err = errors.Join(err, add(&tar.Header{Name: path.Clean(d) + "/", Mode: 0o755, Typeflag: tar.TypeDir}, nil))
	}
	if err = errors.Join(err, tw.Close()); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// readBuildOutput drains the build's JSON message stream; the build failed
// when a message carries an error, whatever the HTTP status said.
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
