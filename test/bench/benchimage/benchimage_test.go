package benchimage_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/test/bench/benchimage"
	"github.com/hybridsuite/hybrid/test/dockertest"
)

func TestBuild_TwiceWithSameBinary_ReusesImageWithBenchLayout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cli := dockertest.Client(t)

	tag := benchimage.Build(ctx, t, cli)
	require.Equal(t, benchimage.Tag, tag)
	first, err := cli.ImageInspect(ctx, tag)
	require.NoError(t, err)
	require.Equal(t, []string{"bench", "serve", "--port", "8000"}, first.Config.Cmd)
	require.Equal(t, benchimage.BenchDir, first.Config.WorkingDir)
	require.Equal(t, benchimage.User, first.Config.User)
	require.Contains(t, first.Config.Env, "PATH=/usr/local/bin")

	benchimage.Build(ctx, t, cli)
	second, err := cli.ImageInspect(ctx, tag)
	require.NoError(t, err)
	require.Equal(t, first.ID, second.ID, "an unchanged binary must reuse the image")
}
