package backup

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestCheckFreeSpace_HugeNeed_ErrorNamesFilesystemAndNumbers(t *testing.T) {
	dir := t.TempDir()
	abs, err := filepath.EvalSymlinks(dir)
	require.NoError(t, err)
	mountinfo := filepath.Join(t.TempDir(), "mountinfo")
	require.NoError(t, os.WriteFile(mountinfo, []byte(
		"22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"+
			"40 22 0:35 / "+abs+" rw - xfs /dev/mapper/backups rw\n"+
			"41 22 0:36 / /other rw - tmpfs tmpfs rw\n"), 0o644))
	statfs := func(path string, st *unix.Statfs_t) error {
		assert.Equal(t, abs, path, "the nearest existing folder is asked")
		st.Bavail, st.Frsize, st.Bsize = 1000, 4096, 4096
		return nil
	}

	err = checkFreeSpace(statfs, mountinfo, filepath.Join(dir, "not", "yet"), 1<<40, 0.1)
	var e *InsufficientSpaceError
	require.ErrorAs(t, err, &e)
	assert.Equal(t, int64(4_096_000), e.Free)
	assert.Equal(t, int64(1<<40), e.Need)
	assert.Equal(t, int64(1<<40)+int64(1<<40)/10+1, e.Required)
	assert.Equal(t, abs, e.MountPoint)
	assert.Equal(t, "xfs", e.FSType)
	for _, want := range []string{abs, "xfs", "/dev/mapper/backups", "4096000", strconv.FormatInt(e.Required, 10), "1.1 TiB", "10% headroom"} {
		assert.Contains(t, err.Error(), want)
	}

	require.NoError(t, checkFreeSpace(statfs, mountinfo, dir, 3_000_000, 0.1))
	require.Error(t, checkFreeSpace(statfs, mountinfo, dir, 4_000_000, 0.1), "headroom counts")
}

func TestCheckFreeSpace_ThisFilesystem(t *testing.T) {
	require.NoError(t, CheckFreeSpace(t.TempDir(), 1, 0))
	err := CheckFreeSpace(t.TempDir(), 1<<62, 0.1)
	var e *InsufficientSpaceError
	require.ErrorAs(t, err, &e)
	assert.NotEmpty(t, e.MountPoint)
}

func TestCheckFreeSpace_SmallTmpfs(t *testing.T) {
	dir := t.TempDir()
	mountTmpfs(t, dir, "1m")

	require.NoError(t, CheckFreeSpace(dir, 200_000, 0.1))
	err := CheckFreeSpace(filepath.Join(dir, "restore"), 5_000_000, 0.1)
	var e *InsufficientSpaceError
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "tmpfs", e.FSType)
	assert.LessOrEqual(t, e.Free, int64(1<<20))
	assert.Contains(t, err.Error(), dir)
}

func TestUncompressedSize_ReadsGzipTrailer(t *testing.T) {
	dir := t.TempDir()
	raw := append(bytes.Repeat([]byte("abc"), 100_000), randomBytes(5000, 9)...)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(raw)
	require.NoError(t, zw.Close())
	gz := filepath.Join(dir, "x.sql.gz")
	require.NoError(t, os.WriteFile(gz, buf.Bytes(), 0o644))
	plain := filepath.Join(dir, "x.tar")
	require.NoError(t, os.WriteFile(plain, raw[:777], 0o644))

	n, err := UncompressedSize(gz)
	require.NoError(t, err)
	assert.Equal(t, int64(len(raw)), n)
	n, err = UncompressedSize(plain)
	require.NoError(t, err)
	assert.Equal(t, int64(777), n)
	_, err = UncompressedSize(filepath.Join(dir, "missing"))
	assert.True(t, errors.Is(err, os.ErrNotExist))
}

func TestISizeEstimate_WrapsPast4GiB(t *testing.T) {
	assert.Equal(t, int64(1000), isizeEstimate(1000, 100))
	// 6 GiB of incompressible data: ISIZE says 2 GiB, the file is ~6 GiB.
	assert.Equal(t, int64(6<<30), isizeEstimate(2<<30, 6<<30+1000))
}

func TestMountOf_UnescapesSpaces(t *testing.T) {
	mountinfo := filepath.Join(t.TempDir(), "mountinfo")
	require.NoError(t, os.WriteFile(mountinfo, []byte("40 22 0:35 / /mnt/my\\040disk rw - ext4 /dev/sdb1 rw\n"), 0o644))
	mp, fs, dev := mountOf(mountinfo, "/mnt/my disk/backups")
	assert.Equal(t, "/mnt/my disk", mp)
	assert.Equal(t, "ext4", fs)
	assert.Equal(t, "/dev/sdb1", dev)
	mp, _, _ = mountOf(mountinfo, "/mnt/my diskother")
	assert.Empty(t, mp)
}

// mountTmpfs mounts a small tmpfs on dir until the test ends, or skips.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, 0) })
}
