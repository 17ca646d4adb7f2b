package backup

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	testSite = "site1.example.com"
	testID   = "20250102_030405"
)

// benchBackup writes what `bench --site <site> backup --with-files` leaves in
// the backups folder and returns the paths, database first.
func benchBackup(t *testing.T, dir, site, id string) []string {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o750))
	prefix := filepath.Join(dir, id+"-"+siteSlug(site))
	db := prefix + "-database.sql.gz"
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(bytes.Repeat([]byte("INSERT INTO tabUser VALUES ('x');\n"), 3000))
	require.NoError(t, err)
	_, err = zw.Write(randomBytes(70_000, 1))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile(db, buf.Bytes(), 0o644))
	files := prefix + "-files.tar"
	require.NoError(t, os.WriteFile(files, randomBytes(300_000, 2), 0o644))
	private := prefix + "-private-files.tar"
	require.NoError(t, os.WriteFile(private, randomBytes(123_457, 3), 0o644))
	return []string{db, files, private}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{byte(seed)}))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func fileSHA256(t *testing.T, path string) (string, int64) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), int64(len(data))
}

func sealTestBackup(t *testing.T) (Manifest, string) {
	t.Helper()
	backups := filepath.Join(t.TempDir(), "sites", testSite, "private", "backups")
	files := benchBackup(t, backups, testSite, testID)
	m, err := Seal(context.Background(), testSite, files, backups)
	require.NoError(t, err)
	return m, backups
}
