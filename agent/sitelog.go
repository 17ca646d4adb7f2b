package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/hybridsuite/hybrid/exporters/sitelog"
)

// siteLogSocket is where nginx sends its access log lines for the agent whose
// server root is root: /run/hybrid-agent/<hash of the root>/, a folder of the
// host's /run that bench containers do not see, and that nginx's workers
// (nobody by default) can reach, which they cannot under <root>/agent (0700)
// or a home folder closed to others. The socket itself is root's and the
// workers' group's, 0660. The hash keeps agents of two roots apart, and the
// path short (a unix socket's is at most 107 bytes).
func siteLogSocket(root string) string {
	abs, err := filepath.Abs(root)
	if err != nil {
		abs = root
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join("/run/hybrid-agent", hex.EncodeToString(sum[:4]), "nginx-access.sock")
}

// newSiteLog makes the socket nginx's workers send to: root's, and the
// group's of the workers' user (sites.nginx.user, "user" or "user group")
// when that is not root. When those workers could not reach it (a folder on
// the way they may not enter), it returns nil and warns: nginx would log an
// error for every request instead.
func newSiteLog(root, nginxUser string, logger *slog.Logger) (*sitelog.Collector, error) {
	uid, gid, err := workerIDs(nginxUser)
	if err != nil {
		return nil, fmt.Errorf("sites.nginx.user: %w", err)
	}
	if blocked := unreachable(filepath.Dir(siteLogSocket(root)), uid, gid); blocked != "" {
		logger.Warn("site request metrics are off: nginx's workers cannot reach the site log socket; run them as a user that can (sites.nginx.user) or open the folder to their group",
			"socket", siteLogSocket(root), "folder", blocked, "worker_uid", uid, "worker_gid", gid)
		return nil, nil
	}
	if uid == 0 {
		gid = -1
	}
	c, err := sitelog.New(sitelog.Options{
		Socket: siteLogSocket(root),
		GID:    gid,
		Logger: logger.With("collector", "sitelog"),
	})
	if err != nil {
		return nil, fmt.Errorf("sites.nginx.request_metrics: %w", err)
	}
	return c, nil
}

// workerIDs are the user and group nginx's workers run as: sites.nginx.user,
// or nginx's default, nobody and its group.
func workerIDs(nginxUser string) (uid, gid int, err error) {
	fields := strings.Fields(nginxUser)
	if len(fields) == 0 {
		fields = []string{"nobody"}
	}
	u, err := user.Lookup(fields[0])
	if err != nil {
		return 0, 0, err
	}
	if uid, err = strconv.Atoi(u.Uid); err != nil {
		return 0, 0, err
	}
	g := u.Gid
	if len(fields) == 2 {
		grp, err := user.LookupGroup(fields[1])
		if err != nil {
			return 0, 0, err
		}
		g = grp.Gid
	}
	gid, err = strconv.Atoi(g)
	return uid, gid, err
}

// unreachable returns the first folder from / down to dir that uid:gid may
// not enter, or "". A folder not made yet is made 0755 by the collector.
func unreachable(dir string, uid, gid int) string {
	if uid == 0 {
		return ""
	}
	p := "/"
	for _, elem := range append([]string{""}, strings.Split(strings.TrimPrefix(filepath.Clean(dir), "/"), "/")...) {
		p = filepath.Join(p, elem)
		st, err := os.Stat(p)
		if err != nil {
			return ""
		}
		sys := st.Sys().(*syscall.Stat_t)
		bit := os.FileMode(0o001)
		switch {
		case int(sys.Uid) == uid:
			bit = 0o100
		case int(sys.Gid) == gid:
			bit = 0o010
		}
		if st.Mode().Perm()&bit == 0 {
			return p
		}
	}
	return ""
}
