package benchimage_test

import (
	"context"
	"strings"
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

	id := benchimage.Build(ctx, t, cli)
	require.True(t, strings.HasPrefix(id, "sha256:"), id)
	first, err := cli.ImageInspect(ctx, id)
	require.NoError(t, err)
	require.Equal(t, []string{"bench", "serve", "--port", "8000"}, first.Config.Cmd)
	require.Equal(t, benchimage.BenchDir, first.Config.WorkingDir)
	require.Equal(t, benchimage.User, first.Config.User)
	require.Contains(t, first.Config.Env, "PATH=/usr/local/bin")

	require.Equal(t, id, first.ID)
	require.Equal(t, id, benchimage.Build(ctx, t, cli), "an unchanged binary must reuse the image")
	tagged, err := cli.ImageInspect(ctx, benchimage.Tag)
	require.NoError(t, err)
	require.Contains(t, tagged.RepoTags, benchimage.Tag)
}
