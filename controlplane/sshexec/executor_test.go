package sshexec_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/controlplane/sshexec"
	"github.com/hybridsuite/hybrid/test/sshdtest"
)

// dialServer connects to srv with its client key and its host key pinned.
func dialServer(t *testing.T, srv *sshdtest.Server) *sshexec.Client {
	t.Helper()
	hostKey, err := srv.HostKey()
	require.NoError(t, err)
	c, err := sshexec.Dial(context.Background(), sshexec.Config{
		Address:     srv.Addr(),
		User:        srv.User(),
		KeyFile:     srv.ClientKeyFile(),
		HostKey:     hostKey,
		DialTimeout: 5 * time.Second,
	})
	require.NoError(t, err, srv.Log())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// forEachExecutor runs test against an SSH client to a real sshd (on this
// host, so the files it writes are local paths) and against Local.
func forEachExecutor(t *testing.T, test func(t *testing.T, ex sshexec.Executor)) {
	t.Run("ssh", func(t *testing.T) {
		t.Parallel()
		test(t, dialServer(t, sshdtest.Start(t)))
	})
	t.Run("local", func(t *testing.T) {
		t.Parallel()
		test(t, sshexec.NewLocal())
	})
}

func TestRun_ExitZero_OutputAndStatus(t *testing.T) {
	forEachExecutor(t, func(t *testing.T, ex sshexec.Executor) {
		res, err := ex.Run(context.Background(), sshexec.Command{
			Args: []string{"sh", "-c", `echo out; echo err >&2`},
		})
		require.NoError(t, err)
		require.Equal(t, "out\n", res.Stdout)
		require.Equal(t, "err\n", res.Stderr)
		require.Equal(t, 0, res.ExitStatus)
		require.Positive(t, res.Duration)
	})
}

func TestRun_NonZeroExit_ExitErrorWithStatusAndTails(t *testing.T) {
	forEachExecutor(t, func(t *testing.T, ex sshexec.Executor) {
		res, err := ex.Run(context.Background(), sshexec.Command{
			Args: []string{"sh", "-c", `echo partial; echo first >&2; echo "disk is full" >&2; exit 7`},
		})
		var exit *sshexec.ExitError
		require.ErrorAs(t, err, &exit)
		require.Equal(t, 7, exit.Status)
		require.Empty(t, exit.Signal)
		require.Equal(t, "disk is full", exit.LastLine)
		require.Contains(t, err.Error(), "exited with status 7: disk is full")
		require.Contains(t, err.Error(), "sh -c")
		require.Equal(t, 7, res.ExitStatus)
		require.Equal(t, "partial\n", res.Stdout)
		require.Equal(t, "first\ndisk is full\n", res.Stderr)
	})
}

func TestRun_MissingProgram_ExitError127(t *testing.T) {
	forEachExecutor(t, func(t *testing.T, ex sshexec.Executor) {
		res, err := ex.Run(context.Background(), sshexec.Command{Args: []string{"no-such-program-xyz"}})
		var exit *sshexec.ExitError
		require.ErrorAs(t, err, &exit)
		require.Equal(t, 127, exit.Status)
		require.Equal(t, 127, res.ExitStatus)
		require.Contains(t, exit.LastLine, "no-such-program-xyz")
		require.Contains(t, err.Error(), "not found")
	})
}

func TestRun_Stdin_Delivered(t *testing.T) {
	forEachExecutor(t, func(t *testing.T, ex sshexec.Executor) {
		input := strings.Repeat("line of input\n", 10000) + "end"
		res, err := ex.Run(context.Background(), sshexec.Command{
			Args:  []string{"sha256sum"},
			Stdin: strings.NewReader(input),
		})
		require.NoError(t, err)
		sum := sha256.Sum256([]byte(input))
		require.Equal(t, hex.EncodeToString(sum[:])+"  -\n", res.Stdout)
	})
}

func TestRun_ContextCanceled_LongCommandEndsWithinSeconds(t *testing.T) {
	forEachExecutor(t, func(t *testing.T, ex sshexec.Executor) {
		// A duration no other process on the machine sleeps, to find ours.
		marker := fmt.Sprintf("100.%d", time.Now().UnixNano()%1000000)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := ex.Run(ctx, sshexec.Command{Args: []string{"sleep", marker}})
		elapsed := time.Since(start)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, elapsed, 2500*time.Millisecond)
		require.Eventually(t, func() bool {
			return !processRunning("sleep\x00" + marker + "\x00")
		}, 3*time.Second, 50*time.Millisecond, "the remote sleep must be gone")
	})
}

func TestRun_ContextCanceled_ChildrenOfTheCommandEndToo(t *testing.T) {
	forEachExecutor(t, func(t *testing.T, ex sshexec.Executor) {
		n := time.Now().UnixNano() % 1000000
		bg, fg := fmt.Sprintf("101.%d", n), fmt.Sprintf("102.%d", n)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := ex.Run(ctx, sshexec.Command{
			// A shell that ignores SIGTERM, with a child in the background
			// and one in the foreground.
			Args: []string{"sh", "-c", `trap '' TERM; sleep "$1" & sleep "$2"; wait`, "sh", bg, fg},
		})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, time.Since(start), 3*time.Second)
		require.Eventually(t, func() bool {
			return !processRunning("sleep\x00"+bg+"\x00") && !processRunning("sleep\x00"+fg+"\x00")
		}, 3*time.Second, 50*time.Millisecond, "the command's children must be gone")
	})
}

// processRunning says whether a process on this host has the command line
// cmdline (as /proc/<pid>/cmdline spells it, NUL-separated).
func processRunning(cmdline string) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && string(b) == cmdline {
			return true
		}
	}
	return false
}

func TestRun_NastyWords_ReachArgvVerbatim(t *testing.T) {
	forEachExecutor(t, func(t *testing.T, ex sshexec.Executor) {
		dir := t.TempDir()
		pwned := filepath.Join(dir, "pwned")
		words := []string{
			"$(touch " + pwned + ")",
			"`touch " + pwned + "`",
			"; touch " + pwned,
			"a && touch " + pwned,
			"'", `"`, `'\''`, `\`, `\n`,
			"two\nlines", "tab\there", " leading and trailing ",
			"", "*", "~", "$HOME", "${PATH}", "!!", "#comment", "a=b", "-n", "--",
			"ünïcødé ✓ 日本", "\x01\x7f", "| cat", "> " + pwned, "<(true)",
		}
		res, err := ex.Run(context.Background(), sshexec.Command{
			Args: append([]string{"printf", `%s\0`}, words...),
		})
		require.NoError(t, err)
		got := strings.Split(res.Stdout, "\x00")
		require.Equal(t, "", got[len(got)-1])
		require.Equal(t, words, got[:len(got)-1])
		require.NoFileExists(t, pwned)
	})
}

func TestRun_NULInArgument_RefusedBeforeRunning(t *testing.T) {
	forEachExecutor(t, func(t *testing.T, ex sshexec.Executor) {
		_, err := ex.Run(context.Background(), sshexec.Command{Args: []string{"echo", "a\x00b"}})
		require.ErrorContains(t, err, "argument 1 of echo contains a NUL byte")
		_, err = ex.Run(context.Background(), sshexec.Command{})
		require.ErrorContains(t, err, "no program")
	})
}

func TestRun_LongOutput_TailBounded(t *testing.T) {
	forEachExecutor(t, func(t *testing.T, ex sshexec.Executor) {
		// 200,000 numbered lines on stdout, a shorter run on stderr.
		res, err := ex.Run(context.Background(), sshexec.Command{
			Args: []string{"sh", "-c", `seq 1 200000; seq 1 30000 >&2`},
		})
		require.NoError(t, err)
		require.Len(t, res.Stdout, sshexec.OutputTail)
		require.True(t, strings.HasSuffix(res.Stdout, "\n199999\n200000\n"))
		var all bytes.Buffer
		for i := 1; i <= 30000; i++ {
			fmt.Fprintf(&all, "%d\n", i)
		}
		want := all.String()
		require.Equal(t, want[len(want)-sshexec.OutputTail:], res.Stderr)
	})
}

func TestRun_RedactedSecret_NotInOutputOrError(t *testing.T) {
	forEachExecutor(t, func(t *testing.T, ex sshexec.Executor) {
		const secret = "hunter2-s3cr3t-pa55"
		res, err := ex.Run(context.Background(), sshexec.Command{
			// A program that echoes what it reads, everywhere.
			Args:   []string{"sh", "-c", `read -r pw; echo "using $pw"; printf 'denied for %s\n' "$pw" >&2; exit 3`},
			Stdin:  strings.NewReader(secret + "\n"),
			Redact: []string{secret},
		})
		var exit *sshexec.ExitError
		require.ErrorAs(t, err, &exit)
		require.Equal(t, "using ***\n", res.Stdout)
		require.Equal(t, "denied for ***\n", res.Stderr)
		require.Contains(t, err.Error(), "denied for ***")
		require.NotContains(t, err.Error()+res.Stdout+res.Stderr, secret)
	})
}

func TestCommandString_QuotesAndRedacts(t *testing.T) {
	cmd := sshexec.Command{
		Args:   []string{"mariadb", "--user=admin", "-e", "SET PASSWORD = 'topsecret'", "it's"},
		Redact: []string{"topsecret"},
	}
	require.Equal(t, `mariadb '--user=admin' -e 'SET PASSWORD = '\''***'\''' 'it'\''s'`, cmd.String())
}

func TestQuote(t *testing.T) {
	for word, want := range map[string]string{
		"":             "''",
		"plain":        "plain",
		"/usr/bin/x-1": "/usr/bin/x-1",
		"a b":          "'a b'",
		"it's":         `'it'\''s'`,
		"$(x)":         "'$(x)'",
		"a=b":          "'a=b'",
		"~root":        "'~root'",
		"x\ny":         "'x\ny'",
	} {
		require.Equal(t, want, sshexec.Quote(word), "Quote(%q)", word)
	}
}

// failingReader gives n bytes, then an error.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errors.New("source broke")
	}
	k := min(len(p), r.n)
	for i := range p[:k] {
		p[i] = 'x'
	}
	r.n -= k
	return k, nil
}

// slowReader never ends: 1 KiB every 10 ms.
type slowReader struct{}

func (slowReader) Read(p []byte) (int, error) {
	time.Sleep(10 * time.Millisecond)
	k := min(len(p), 1024)
	for i := range p[:k] {
		p[i] = 'y'
	}
	return k, nil
}

func TestUpload_AtomicWithModeAndSHA256(t *testing.T) {
	forEachExecutor(t, func(t *testing.T, ex sshexec.Executor) {
		dir := t.TempDir()
		dst := filepath.Join(dir, "agent.yml")
		content := bytes.Repeat([]byte("token: abc\n"), 50000) // a few transfer packets
		res, err := ex.Upload(context.Background(), dst, bytes.NewReader(content), 0o600)
		require.NoError(t, err)
		sum := sha256.Sum256(content)
		require.Equal(t, hex.EncodeToString(sum[:]), res.SHA256)
		require.Equal(t, int64(len(content)), res.Size)
		require.Equal(t, dst, res.Path)
		got, err := os.ReadFile(dst)
		require.NoError(t, err)
		require.Equal(t, content, got)
		info, err := os.Stat(dst)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

		// Replacing: new content and mode, and nothing left beside it.
		res, err = ex.Upload(context.Background(), dst, strings.NewReader("#!/bin/sh\n"), 0o755)
		require.NoError(t, err)
		require.Equal(t, int64(10), res.Size)
		info, err = os.Stat(dst)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o755), info.Mode().Perm())
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.Len(t, entries, 1)
	})
}

func TestUpload_SourceFails_NoTempFileAndOldFileKept(t *testing.T) {
	forEachExecutor(t, func(t *testing.T, ex sshexec.Executor) {
		dir := t.TempDir()
		dst := filepath.Join(dir, "hybrid-agent")
		require.NoError(t, os.WriteFile(dst, []byte("old"), 0o755))
		_, err := ex.Upload(context.Background(), dst, &failingReader{n: 100000}, 0o755)
		require.ErrorContains(t, err, "source broke")
		require.ErrorContains(t, err, dst)
		got, err := os.ReadFile(dst)
		require.NoError(t, err)
		require.Equal(t, "old", string(got))
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.Len(t, entries, 1, "the temporary file must be removed")
	})
}

func TestUpload_BadDestination_ClearError(t *testing.T) {
	forEachExecutor(t, func(t *testing.T, ex sshexec.Executor) {
		dir := t.TempDir()
		_, err := ex.Upload(context.Background(), filepath.Join(dir, "missing", "f"), strings.NewReader("x"), 0o644)
		require.ErrorContains(t, err, filepath.Join(dir, "missing", "f"))
		_, err = ex.Upload(context.Background(), "relative/f", strings.NewReader("x"), 0o644)
		require.ErrorContains(t, err, "must be a clean absolute file path")
		_, err = ex.Upload(context.Background(), filepath.Join(dir, "f"), strings.NewReader("x"), 0o4755)
		require.ErrorContains(t, err, "only permission bits")
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.Empty(t, entries)
	})
}

func TestUpload_ContextCanceled_NoTempFile(t *testing.T) {
	forEachExecutor(t, func(t *testing.T, ex sshexec.Executor) {
		dir := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := ex.Upload(ctx, filepath.Join(dir, "f"), slowReader{}, 0o644)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Eventually(t, func() bool {
			entries, err := os.ReadDir(dir)
			return err == nil && len(entries) == 0
		}, 5*time.Second, 50*time.Millisecond)
	})
}

func TestRun_CommandIgnoresLargeStdin_Succeeds(t *testing.T) {
	forEachExecutor(t, func(t *testing.T, ex sshexec.Executor) {
		res, err := ex.Run(context.Background(), sshexec.Command{
			Args:  []string{"echo", "ignored input"},
			Stdin: bytes.NewReader(bytes.Repeat([]byte("z"), 8<<20)),
		})
		require.NoError(t, err)
		require.Equal(t, "ignored input\n", res.Stdout)
	})
}
