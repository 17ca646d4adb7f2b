package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/hybridsuite/hybrid/dashboards"
	"github.com/stretchr/testify/require"
)

func TestRun_WritesEveryDashboard(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"-out", dir}, &stdout, &stderr), stderr.String())

	all, err := dashboards.All()
	require.NoError(t, err)
	for _, d := range all {
		want, err := dashboards.Marshal(d)
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(dir, d.Name+".json"))
		require.NoError(t, err)
		require.Equal(t, string(want), string(got), d.Name)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, len(all), "no temporary files left behind")
}

func TestRun_Prune_RemovesOnlyOtherJSON(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "renamed.json")
	other := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(stale, []byte("{}\n"), 0o644))
	require.NoError(t, os.WriteFile(other, []byte("keep\n"), 0o644))

	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"-out", dir}, &stdout, &stderr), stderr.String())
	require.FileExists(t, stale, "kept without -prune")

	require.Equal(t, 0, run([]string{"-out", dir, "-prune"}, &stdout, &stderr), stderr.String())
	require.NoFileExists(t, stale)
	require.FileExists(t, other)
	require.FileExists(t, filepath.Join(dir, "host.json"))
}

func TestRun_MissingFolder_Fails(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Equal(t, 1, run([]string{"-out", filepath.Join(t.TempDir(), "missing")}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "gen: write ")
}

func TestRun_BadArguments_Fail(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Equal(t, 2, run([]string{"extra"}, &stdout, &stderr))
	require.Equal(t, 2, run([]string{"-nope"}, &stdout, &stderr))
}
