package main

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func getPing(t *testing.T, url, host string) (int, time.Duration) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/api/method/ping", nil)
	require.NoError(t, err)
	req.Host = host
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}

func TestSetFault_StatusAndSlow_AnsweredForThatSiteOnlyUntilOff(t *testing.T) {
	tb := newTestBench(t)
	dbA, dbB := createSiteDB(t, "fault_a"), createSiteDB(t, "fault_b")
	tb.mustRun(t, dbA.newSiteArgs("a.example.com")...)
	tb.mustRun(t, dbB.newSiteArgs("b.example.com")...)
	srv := tb.serve(t)

	for _, code := range []int{500, 402, 429} {
		tb.mustRun(t, "--site", "a.example.com", "set-fault", "status", strconv.Itoa(code))
		got, _ := getPing(t, srv.URL, "a.example.com")
		require.Equal(t, code, got)
		got, _ = getPing(t, srv.URL, "b.example.com")
		require.Equal(t, http.StatusOK, got, "the other site is not affected")
	}
	tb.mustRun(t, "--site", "a.example.com", "set-fault", "slow", "400ms")
	got, took := getPing(t, srv.URL, "a.example.com")
	require.Equal(t, 429, got, "kinds add up: still the status")
	require.GreaterOrEqual(t, took, 400*time.Millisecond)

	tb.mustRun(t, "--site", "a.example.com", "set-fault", "off")
	got, took = getPing(t, srv.URL, "a.example.com")
	require.Equal(t, http.StatusOK, got)
	require.Less(t, took, 400*time.Millisecond)
}

func TestSetFault_BadInput_UsageErrorNothingWritten(t *testing.T) {
	tb := newTestBench(t)
	db := createSiteDB(t, "fault_bad")
	tb.mustRun(t, db.newSiteArgs("bad.example.com")...)
	before, err := readJSONObject(tb.siteConfigPath("bad.example.com"))
	require.NoError(t, err)
	for _, args := range [][]string{
		{"status", "99"}, {"status", "abc"}, {"slow", "-1s"}, {"slow", "1h"}, {"memory", "0"},
		{"memory", "999999"}, {"cpu", "65"}, {"exit", "0"}, {"explode", "1"}, {"status"}, {},
	} {
		code, _, stderr := tb.run(t, append([]string{"--site", "bad.example.com", "set-fault"}, args...)...)
		require.Equal(t, 2, code, "%v: %s", args, stderr)
		require.Contains(t, stderr, "set-fault", args)
	}
	code, _, stderr := tb.run(t, "--site", "nosuch.example.com", "set-fault", "status", "500")
	require.Equal(t, 1, code, stderr)
	after, err := readJSONObject(tb.siteConfigPath("bad.example.com"))
	require.NoError(t, err)
	require.Equal(t, before, after)
}

func TestProcessFaults_MemoryCPUAndExit(t *testing.T) {
	tb := newTestBench(t)
	db := createSiteDB(t, "fault_proc")
	tb.mustRun(t, db.newSiteArgs("proc.example.com")...)
	p := &processFaults{b: tb.Bench, interval: 50 * time.Millisecond}

	tb.mustRun(t, "--site", "proc.example.com", "set-fault", "memory", "32")
	tb.mustRun(t, "--site", "proc.example.com", "set-fault", "cpu", "1")
	memory, cpus, exit, _ := p.scan()
	require.Equal(t, [3]int{32, 1, 0}, [3]int{memory, cpus, exit})
	p.apply(memory, cpus)
	require.Len(t, p.held, 32<<20)
	require.Equal(t, 1, p.burning)
	p.apply(0, 0)
	require.Nil(t, p.held)
	require.Equal(t, 0, p.burning)

	tb.mustRun(t, "--site", "proc.example.com", "set-fault", "exit", "3")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := p.run(ctx)
	var exitErr *exitCodeError
	require.True(t, errors.As(err, &exitErr), "%v", err)
	require.Equal(t, 3, exitErr.Code)
	require.Equal(t, "proc.example.com", exitErr.Site)
}

func TestServe_ExitFault_ProcessExitsWithTheCode(t *testing.T) {
	tb := newTestBench(t)
	db := createSiteDB(t, "fault_exit")
	tb.mustRun(t, db.newSiteArgs("exit.example.com")...)
	tb.mustRun(t, "--site", "exit.example.com", "set-fault", "exit", "7")
	done := make(chan int, 1)
	go func() {
		code, _, _ := tb.run(t, "serve", "--port", "0", "--bind", "127.0.0.1")
		done <- code
	}()
	select {
	case code := <-done:
		require.Equal(t, 7, code)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not exit on the exit fault")
	}
}
