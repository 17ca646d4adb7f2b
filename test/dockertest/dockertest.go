// Package dockertest connects tests to the local Docker engine: without one a
// test is skipped, except in CI (CI=true), where a missing engine is a failure.
package dockertest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Client returns a client of the local engine, closed when the test ends.
func Client(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.New(client.FromEnv)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the Docker engine is required in CI but unreachable (start it; `make test` does not): %v", err)
		}
		t.Skipf("the Docker engine is unreachable, skipping (with CI=true this fails): %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Run creates and starts a container and removes it when the test ends,
// whatever its outcome. It returns the container's id.
func Run(ctx context.Context, t testing.TB, cli *client.Client, name string, cfg *container.Config, hc *container.HostConfig) string {
	t.Helper()
	res, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: hc})
	if err != nil {
		t.Fatalf("create container %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, err := cli.ContainerRemove(ctx, res.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			t.Errorf("remove container %s: %v", name, err)
		}
	})
	if _, err := cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start container %s: %v", name, err)
	}
	return res.ID
}
