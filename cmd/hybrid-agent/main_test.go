package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRun_MalformedConfig_ExitsWithTheProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.yml")
	require.NoError(t, os.WriteFile(path, []byte("mariadb:\n  query_timeout: soon\n"), 0o600))
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"--config", path}, &stderr)
	require.Equal(t, 2, code)
	require.Contains(t, stderr.String(), path)
	require.Contains(t, stderr.String(), "soon")
}

func TestRun_InvalidValues_ListsEveryField(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.yml")
	require.NoError(t, os.WriteFile(path, []byte("root: here\ncollector_timeout: 0s\n"), 0o600))
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"--config", path, "--check-config"}, &stderr)
	require.Equal(t, 2, code)
	require.Contains(t, stderr.String(), "root: must be an absolute path")
	require.Contains(t, stderr.String(), "collector_timeout: must be a positive duration")
}

func TestRun_CheckConfig_Valid(t *testing.T) {
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"--root", t.TempDir(), "--check-config"}, &stderr)
	require.Equal(t, 0, code, stderr.String())
}

func TestRun_UnknownFlag(t *testing.T) {
	var stderr bytes.Buffer
	require.Equal(t, 2, run(context.Background(), []string{"--nope"}, &stderr))
	require.Contains(t, stderr.String(), "nope")
}

func TestRun_APIBeyondLoopbackWithoutTLS_Refused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.yml")
	require.NoError(t, os.WriteFile(path, []byte("api:\n  listen_address: 0.0.0.0:9475\n"), 0o600))
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"--config", path, "--root", t.TempDir(), "--check-config"}, &stderr)
	require.Equal(t, 2, code)
	require.Contains(t, stderr.String(), "api.web_config_file: must be set")
}
