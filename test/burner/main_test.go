package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRun_ExitN_ReturnsN(t *testing.T) {
	var out, errOut bytes.Buffer
	if got := run(context.Background(), []string{"exit", "42"}, &out, &errOut); got != 42 {
		t.Errorf("burner exit 42 returned %d (stderr %q)", got, errOut.String())
	}
}

func TestRun_BadArguments_ReturnUsageStatus(t *testing.T) {
	for _, args := range [][]string{nil, {"dance"}, {"exit"}, {"exit", "x"}, {"exit", "300"}, {"tick"}, {"tick", "f", "--fast"}} {
		var out, errOut bytes.Buffer
		if got := run(context.Background(), args, &out, &errOut); got != 2 {
			t.Errorf("burner %v returned %d, want 2", args, got)
		}
		if errOut.Len() == 0 {
			t.Errorf("burner %v wrote nothing to stderr", args)
		}
	}
}

func TestRun_IdleAndBurn_ReturnZeroWhenSignalled(t *testing.T) {
	for _, mode := range []string{"idle", "burn", "alloc"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			done := make(chan int, 1)
			go func() { done <- run(ctx, []string{mode}, &bytes.Buffer{}, &bytes.Buffer{}) }()
			select {
			case got := <-done:
				if got != 0 {
					t.Errorf("burner %s returned %d after cancel, want 0", mode, got)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("burner %s did not return after its context ended", mode)
			}
		})
	}
}

func TestRun_Tick_AppendsEvery100msUntilSignalled(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tick.log")
	ctx, cancel := context.WithTimeout(context.Background(), 550*time.Millisecond)
	defer cancel()
	if got := run(ctx, []string{"tick", file}, &bytes.Buffer{}, &bytes.Buffer{}); got != 0 {
		t.Fatalf("burner tick returned %d after cancel, want 0", got)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte("\n")); n < 3 || n > 6 {
		t.Errorf("burner tick wrote %d lines in 550 ms, want about 5:\n%s", n, data)
	}
}
