package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testBucket = "backups"
	testSecret = "s3cr3t-VALUE-never-to-be-seen"
)

// fakeS3 is gofakes3 behind httptest, with a switch to fail PUTs.
type fakeS3 struct {
	srv *httptest.Server

	mu      sync.Mutex
	failPut func(r *http.Request) bool
	parts   int // part uploads seen
	// breakRequest, when set, handles the PUTs failPut selects (default: a 500).
	breakRequest func(http.ResponseWriter, *http.Request)
}

func newFakeS3(t *testing.T) *fakeS3 {
	t.Helper()
	backend := s3mem.New()
	require.NoError(t, backend.CreateBucket(testBucket))
	s3 := gofakes3.New(backend)
	f := &fakeS3{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		fail := r.Method == http.MethodPut && f.failPut != nil && f.failPut(r)
		breakRequest := f.breakRequest
		if r.URL.Query().Has("partNumber") {
			f.parts++
		}
		f.mu.Unlock()
		if fail {
			if breakRequest != nil {
				breakRequest(w, r)
			}
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected</Message></Error>`)
			return
		}
		s3.Server().ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeS3) setFailPut(fn func(*http.Request) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failPut = fn
}

func writeSecret(t *testing.T, dir, name, value string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(value+"\n"), mode))
	require.NoError(t, os.Chmod(p, mode))
	return p
}

func newTestOffsite(t *testing.T, f *fakeS3, logs *bytes.Buffer) *Offsite {
	t.Helper()
	dir := t.TempDir()
	var logger *slog.Logger
	if logs != nil {
		logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	o, err := NewOffsite(OffsiteConfig{
		Endpoint:      f.srv.URL,
		Bucket:        testBucket,
		AccessKeyFile: writeSecret(t, dir, "access", "AKIATEST", 0o600),
		SecretKeyFile: writeSecret(t, dir, "secret", testSecret, 0o600),
		Insecure:      true,
		Attempts:      2,
		MaxRetries:    1,
		Backoff:       time.Millisecond,
		Logger:        logger,
	})
	require.NoError(t, err)
	return o
}

func TestOffsite_RoundTrip_IdenticalBytes(t *testing.T) {
	ctx := context.Background()
	var logs bytes.Buffer
	f := newFakeS3(t)
	o := newTestOffsite(t, f, &logs)
	m, _ := sealTestBackup(t)

	require.NoError(t, o.Upload(ctx, m, m.Dir))

	prefix := testSite + "/" + m.CreatedAt.UTC().Format("2006-01-02") + "/" + testID
	assert.Equal(t, prefix, o.Prefix(m))
	for _, file := range m.Files {
		info, err := o.client.StatObject(ctx, testBucket, prefix+"/"+file.Name, minio.StatObjectOptions{})
		require.NoError(t, err, file.Name)
		assert.Equal(t, file.Size, info.Size)
		assert.Equal(t, file.SHA256, objectSHA256(info), "sha256 is object metadata")
	}
	_, err := o.client.StatObject(ctx, testBucket, prefix+"/"+ManifestName, minio.StatObjectOptions{})
	require.NoError(t, err)

	listed, err := o.List(ctx, testSite)
	require.NoError(t, err)
	require.Len(t, listed, 1)
	assert.Equal(t, prefix, listed[0].OffsitePrefix)
	assert.Equal(t, m.Files, listed[0].Files)

	dest := filepath.Join(t.TempDir(), "restore", testID)
	got, err := o.Download(ctx, testSite, listed[0].OffsitePrefix+"/", dest)
	require.NoError(t, err)
	assert.Equal(t, m.Files, got.Files)
	assert.Equal(t, dest, got.Dir)
	_, err = Verify(ctx, dest)
	require.NoError(t, err)
	for _, file := range m.Files {
		want, err := os.ReadFile(filepath.Join(m.Dir, file.Name))
		require.NoError(t, err)
		have, err := os.ReadFile(filepath.Join(dest, file.Name))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(want, have), file.Name)
	}
	wantManifest, _ := os.ReadFile(filepath.Join(m.Dir, ManifestName))
	haveManifest, _ := os.ReadFile(filepath.Join(dest, ManifestName))
	assert.Equal(t, string(wantManifest), string(haveManifest))

	// Downloading twice into the same folder is refused, not merged.
	_, err = o.Download(ctx, testSite, prefix, dest)
	require.Error(t, err)

	assert.Contains(t, logs.String(), "backup uploaded")
	assert.NotContains(t, logs.String(), testSecret)
}

func TestOffsite_UploadFailsOnSecondObject_NotListedThenResumes(t *testing.T) {
	t.Run("server error", func(t *testing.T) {
		testInterruptedUpload(t, func(w http.ResponseWriter, r *http.Request) {})
	})
	t.Run("connection dropped mid-body", func(t *testing.T) {
		testInterruptedUpload(t, func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.CopyN(io.Discard, r.Body, 1000)
			panic(http.ErrAbortHandler) // the server closes the connection
		})
	})
}

func testInterruptedUpload(t *testing.T, breakRequest func(http.ResponseWriter, *http.Request)) {
	ctx := context.Background()
	var logs bytes.Buffer
	f := newFakeS3(t)
	o := newTestOffsite(t, f, &logs)
	m, _ := sealTestBackup(t)

	second := "/" + m.Files[1].Name
	var failed int
	f.setFailPut(func(r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, second) {
			failed++
			return true
		}
		return false
	})
	f.mu.Lock()
	f.breakRequest = breakRequest
	f.mu.Unlock()
	err := o.Upload(ctx, m, m.Dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), m.Files[1].Name)
	f.mu.Lock()
	assert.GreaterOrEqual(t, failed, 2, "a transient error is retried")
	f.mu.Unlock()

	prefix := o.Prefix(m)
	_, err = o.client.StatObject(ctx, testBucket, prefix+"/"+ManifestName, minio.StatObjectOptions{})
	require.True(t, isNotFound(err), "no manifest offsite after a failed upload: %v", err)
	_, err = o.client.StatObject(ctx, testBucket, prefix+"/"+m.Files[0].Name, minio.StatObjectOptions{})
	require.NoError(t, err, "the first file made it")
	listed, err := o.List(ctx, testSite)
	require.NoError(t, err)
	assert.Empty(t, listed, "an upload without manifest is not a backup")
	_, err = o.Download(ctx, testSite, prefix, t.TempDir())
	require.ErrorIs(t, err, ErrIncomplete)

	f.setFailPut(nil)
	logs.Reset()
	require.NoError(t, o.Upload(ctx, m, m.Dir))
	assert.Contains(t, logs.String(), "object already offsite", "the first file is not sent again")
	listed, err = o.List(ctx, testSite)
	require.NoError(t, err)
	require.Len(t, listed, 1)
	assert.Equal(t, prefix, listed[0].OffsitePrefix)
}

func TestOffsite_Upload_RefusesCorruptLocalBackup(t *testing.T) {
	ctx := context.Background()
	f := newFakeS3(t)
	o := newTestOffsite(t, f, nil)
	m, _ := sealTestBackup(t)
	path := filepath.Join(m.Dir, m.Files[0].Name)
	data, _ := os.ReadFile(path)
	data[100] ^= 0xff
	require.NoError(t, os.WriteFile(path, data, 0o644))

	err := o.Upload(ctx, m, m.Dir)
	require.ErrorIs(t, err, ErrCorrupt)
	listed, err := o.List(ctx, testSite)
	require.NoError(t, err)
	assert.Empty(t, listed)
}

func TestOffsite_Download_CorruptObject_FailsWithoutManifest(t *testing.T) {
	ctx := context.Background()
	f := newFakeS3(t)
	o := newTestOffsite(t, f, nil)
	m, _ := sealTestBackup(t)
	require.NoError(t, o.Upload(ctx, m, m.Dir))
	// Replace one object's content behind the agent's back, metadata kept.
	key := o.Prefix(m) + "/" + m.Files[2].Name
	bad := randomBytes(int(m.Files[2].Size), 42)
	_, err := o.client.PutObject(ctx, testBucket, key, bytes.NewReader(bad), int64(len(bad)),
		minio.PutObjectOptions{UserMetadata: map[string]string{metaSHA256: m.Files[2].SHA256}})
	require.NoError(t, err)

	dest := filepath.Join(t.TempDir(), "restore")
	_, err = o.Download(ctx, testSite, o.Prefix(m), dest)
	require.Error(t, err)
	assert.Contains(t, err.Error(), m.Files[2].Name)
	assert.NoFileExists(t, filepath.Join(dest, ManifestName))
	assert.NoFileExists(t, filepath.Join(dest, m.Files[2].Name))
}

func TestOffsite_Download_RejectsEscapingPrefixAndManifest(t *testing.T) {
	ctx := context.Background()
	f := newFakeS3(t)
	o := newTestOffsite(t, f, nil)
	dest := t.TempDir()
	for _, p := range []string{"../x", testSite + "/../../x", "other.com/2025-01-02/" + testID, testSite + "/2025-13-45/" + testID, testSite + "/2025-01-02/../" + testID, ""} {
		_, err := o.Download(ctx, testSite, p, dest)
		assert.ErrorIs(t, err, ErrInvalidName, "%q", p)
	}

	// A manifest offsite naming a file outside the folder is not followed.
	prefix := testSite + "/2025-01-02/" + testID
	evil := Manifest{Version: 1, Site: testSite, ID: testID, CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Files: []File{{Name: "../../../evil", Size: 1, SHA256: strings.Repeat("a", 64)}}, Size: 1}
	data, _ := json.Marshal(evil)
	_, err := o.client.PutObject(ctx, testBucket, prefix+"/"+ManifestName, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
	require.NoError(t, err)
	_, err = o.Download(ctx, testSite, prefix, filepath.Join(dest, "a", "b"))
	require.ErrorIs(t, err, ErrInvalidName)
	assert.NoFileExists(t, filepath.Join(dest, "evil"))
	listed, err := o.List(ctx, testSite)
	require.NoError(t, err)
	assert.Empty(t, listed)
}

func TestOffsite_Download_NotEnoughSpace_FailsBeforeFetching(t *testing.T) {
	ctx := context.Background()
	f := newFakeS3(t)
	o := newTestOffsite(t, f, nil)
	m, _ := sealTestBackup(t)
	require.NoError(t, o.Upload(ctx, m, m.Dir))
	small := t.TempDir()
	mountTmpfs(t, small, "64k")
	_, err := o.Download(ctx, testSite, o.Prefix(m), filepath.Join(small, testID))
	var e *InsufficientSpaceError
	require.ErrorAs(t, err, &e)
	assert.Equal(t, m.Size, e.Need)
	entries, _ := os.ReadDir(small)
	assert.Empty(t, entries, "nothing was written")
}

func TestNewOffsite_CredentialsFileReadableByOthers_Fails(t *testing.T) {
	f := newFakeS3(t)
	dir := t.TempDir()
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		t.Run(mode.String(), func(t *testing.T) {
			_, err := NewOffsite(OffsiteConfig{
				Endpoint:      f.srv.URL,
				Bucket:        testBucket,
				AccessKeyFile: writeSecret(t, dir, "access", "AKIATEST", 0o600),
				SecretKeyFile: writeSecret(t, dir, "secret", testSecret, mode),
				Insecure:      true,
			})
			require.ErrorIs(t, err, ErrInsecureCredentials)
			assert.Contains(t, err.Error(), filepath.Join(dir, "secret"))
			assert.NotContains(t, err.Error(), testSecret)
		})
	}
}

func TestNewOffsite_BadConfig_NamesEveryProblem(t *testing.T) {
	_, err := NewOffsite(OffsiteConfig{})
	require.Error(t, err)
	for _, field := range []string{"endpoint", "bucket", "access_key_file", "secret_key_file"} {
		assert.Contains(t, err.Error(), field)
	}
	dir := t.TempDir()
	_, err = NewOffsite(OffsiteConfig{
		Endpoint: "http://example.com", Bucket: "b",
		AccessKeyFile: writeSecret(t, dir, "a", "x", 0o600), SecretKeyFile: writeSecret(t, dir, "s", testSecret, 0o600),
	})
	require.ErrorContains(t, err, "insecure")
	assert.NotContains(t, err.Error(), testSecret)
}

func TestOffsite_WrongSecret_ErrorDoesNotLeakIt(t *testing.T) {
	// gofakes3 does not check signatures; a refused request is simulated.
	f := newFakeS3(t)
	f.setFailPut(func(*http.Request) bool { return true })
	var logs bytes.Buffer
	o := newTestOffsite(t, f, &logs)
	m, _ := sealTestBackup(t)
	err := o.Upload(context.Background(), m, m.Dir)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), testSecret)
	assert.NotContains(t, logs.String(), testSecret)
}

func TestOffsite_LargeFile_MultipartRoundTrip(t *testing.T) {
	ctx := context.Background()
	f := newFakeS3(t)
	o := newTestOffsite(t, f, nil)
	o.partSize = 5 << 20
	backups := filepath.Join(t.TempDir(), "backups")
	files := benchBackup(t, backups, testSite, testID)
	require.NoError(t, os.WriteFile(files[1], randomBytes(12<<20, 7), 0o644))
	m, err := Seal(ctx, testSite, files, backups)
	require.NoError(t, err)
	require.Greater(t, m.Files[1].Size, int64(10<<20))

	require.NoError(t, o.Upload(ctx, m, m.Dir))
	info, err := o.client.StatObject(ctx, testBucket, o.Prefix(m)+"/"+m.Files[1].Name, minio.StatObjectOptions{})
	require.NoError(t, err)
	assert.Equal(t, m.Files[1].Size, info.Size)
	f.mu.Lock()
	assert.GreaterOrEqual(t, f.parts, 3, "uploaded in parts")
	f.mu.Unlock()
	dest := filepath.Join(t.TempDir(), testID)
	_, err = o.Download(ctx, testSite, o.Prefix(m), dest)
	require.NoError(t, err)
	_, err = Verify(ctx, dest)
	require.NoError(t, err)
}
