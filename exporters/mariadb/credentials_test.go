package mariadb

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func writeFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "exporter.cnf")
	require.NoError(t, os.WriteFile(path, []byte(content), mode))
	require.NoError(t, os.Chmod(path, mode)) // not masked by umask
	return path
}

func TestNew_CredentialsFileMode0644_ReturnsErrorNamingFileAndMode(t *testing.T) {
	path := writeFile(t, "[client]\nuser = u\npassword = hunter2\n", 0o644)

	_, err := New(discardLogger(), Options{CredentialsFile: path})

	require.Error(t, err)
	require.Contains(t, err.Error(), path)
	require.Contains(t, err.Error(), "0644")
	require.Contains(t, err.Error(), "0600")
	require.NotContains(t, err.Error(), "hunter2")
}

func TestNew_CredentialsFileMode0400_IsAccepted(t *testing.T) {
	path := writeFile(t, "[client]\nuser = u\n", 0o400)

	c, err := New(discardLogger(), Options{CredentialsFile: path})

	require.NoError(t, err)
	require.NoError(t, c.Close())
}

func TestNew_MissingCredentialsFile_ReturnsNotExistNamingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.cnf")

	_, err := New(discardLogger(), Options{CredentialsFile: path})

	require.ErrorIs(t, err, fs.ErrNotExist)
	require.Contains(t, err.Error(), path)
	require.Contains(t, err.Error(), "mariadb credentials")
}

func TestNew_EmptyCredentialsFileOption_ReturnsError(t *testing.T) {
	_, err := New(discardLogger(), Options{})

	require.ErrorContains(t, err, "CredentialsFile")
}

func TestNew_MissingUser_ReturnsErrorNamingField(t *testing.T) {
	path := writeFile(t, "[client]\npassword = hunter2\n", 0o600)

	_, err := New(discardLogger(), Options{CredentialsFile: path})

	require.ErrorContains(t, err, "user is missing")
	require.Contains(t, err.Error(), path)
	require.NotContains(t, err.Error(), "hunter2")
}
