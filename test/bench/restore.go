package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// errEmptyDump is a dump without statements: restoring it would only drop
// the tables.
var errEmptyDump = errors.New("the dump holds no statements")

func (b *Bench) restoreCmd(ctx context.Context, site string, args []string) error {
	a, err := parseArgs("restore", args, argSpec{
		valued:       []string{"with-public-files", "with-private-files"},
		ignored:      append([]string{"admin-password", "encryption-key"}, rootCredentialOptions...),
		ignoredBools: []string{"force", "install-app"},
	})
	if err != nil {
		return err
	}
	if len(a.pos) != 1 {
		return usagef("restore takes one SQL file (.sql or .sql.gz), got %d arguments", len(a.pos))
	}
	if _, err := b.readSiteConfig(site); err != nil {
		return fmt.Errorf("restore %s: %w", site, err)
	}
	if err := b.siteHookFailure("restore", site, failRestoreFile); err != nil {
		return err
	}
	// Every input is checked before the database is touched: a restore that
	// fails halfway leaves the site worse than it found it.
	dump, err := b.resolveInput(a.pos[0])
	if err != nil {
		return fmt.Errorf("restore %s: %w", site, err)
	}
	tars := map[string]string{}
	for _, kind := range []string{"public", "private"} {
		if p, ok := a.vals["with-"+kind+"-files"]; ok {
			if tars[kind], err = b.resolveInput(p); err != nil {
				return fmt.Errorf("restore %s: %w", site, err)
			}
		}
	}
	n, err := checkDump(dump)
	if err != nil {
		return fmt.Errorf("restore %s: check %s: %w", site, dump, err)
	}
	for kind, p := range tars {
		if err := walkSiteTar(p, func(string, *tar.Header, io.Reader) error { return nil }); err != nil {
			return fmt.Errorf("restore %s: check %s files %s: %w", site, kind, p, err)
		}
	}

	if err := b.loadDump(ctx, site, dump); err != nil {
		return fmt.Errorf("restore %s: %w", site, err)
	}
	for _, kind := range []string{"public", "private"} {
		if p, ok := tars[kind]; ok {
			if err := extractSiteTar(p, filepath.Join(b.siteDir(site), kind)); err != nil {
				return fmt.Errorf("restore %s: extract %s files: %w", site, kind, err)
			}
		}
	}
	with := ""
	if len(tars) > 0 {
		with = " with files"
	}
	fmt.Fprintf(b.Stdout, "Site %s has been restored%s (%d statements)\n", site, with, n)
	return nil
}

// resolveInput finds a file named on the command line: absolute, or relative
// to the sites folder (Frappe runs its commands there, and prints backup
// paths relative to it), or to the bench folder.
func (b *Bench) resolveInput(p string) (string, error) {
	candidates := []string{p}
	if !filepath.IsAbs(p) {
		candidates = []string{filepath.Join(b.SitesDir(), p), filepath.Join(b.Dir, p)}
	}
	for _, c := range candidates {
		if info, err := os.Stat(c); err == nil && info.Mode().IsRegular() {
			return c, nil
		}
	}
	return "", fmt.Errorf("file %s not found (looked at %s)", p, strings.Join(candidates, ", "))
}

// openDump opens a .sql or .sql.gz file, told apart by the gzip magic.
func openDump(p string) (io.ReadCloser, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, 256<<10)
	magic, _ := br.Peek(2)
	if !bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		return struct {
			io.Reader
			io.Closer
		}{br, f}, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		f.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, f}, nil
}

// checkDump reads the whole dump (so a truncated gzip fails here) and
// counts its statements.
func checkDump(p string) (int, error) {
	rc, err := openDump(p)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	sr := newStatementReader(rc)
	n := 0
	for {
		_, err := sr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, err
		}
		n++
	}
	if n == 0 {
		return 0, errEmptyDump
	}
	return n, nil
}

// loadDump drops the site's tables and runs the dump's statements on one
// connection, so its session settings hold throughout.
func (b *Bench) loadDump(ctx context.Context, site, p string) error {
	db, err := b.connectSite(ctx, site)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	if err := dropAllTables(ctx, conn); err != nil {
		return err
	}
	rc, err := openDump(p)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := conn.ExecContext(ctx, "SET FOREIGN_KEY_CHECKS=0"); err != nil {
		return err
	}
	sr := newStatementReader(rc)
	for i := 1; ; i++ {
		stmt, err := sr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("statement %d of %s (%.80s): %w", i, p, stmt, err)
		}
	}
	_, err = conn.ExecContext(ctx, "SET FOREIGN_KEY_CHECKS=1")
	return err
}

// walkSiteTar calls fn for each entry of a Frappe files tar with its name
// stripped of the first two components (<site>/<public|private>/), as
// Frappe's `tar xf --strip 2`. Only entries under files/ are accepted.
func walkSiteTar(p string, fn func(rel string, hdr *tar.Header, r io.Reader) error) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	// Frappe restores .tar and .tgz alike; so does the stand-in.
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		parts := strings.Split(strings.Trim(path.Clean("/"+hdr.Name), "/"), "/")
		if len(parts) <= 2 {
			continue // <site>/ and <site>/public/ themselves
		}
		rel := strings.Join(parts[2:], "/")
		if parts[2] != "files" {
			return fmt.Errorf("entry %q is not under <site>/<kind>/files/", hdr.Name)
		}
		if err := fn(rel, hdr, tr); err != nil {
			return err
		}
	}
}

// extractSiteTar extracts a files tar into dest (the site's public or
// private folder), over what is there, as Frappe does.
func extractSiteTar(p, dest string) error {
	return walkSiteTar(p, func(rel string, hdr *tar.Header, r io.Reader) error {
		// path.Clean on a rooted name above keeps rel inside dest.
		target := filepath.Join(dest, filepath.FromSlash(rel))
		switch hdr.Typeflag {
		case tar.TypeDir:
			return os.MkdirAll(target, 0o755)
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			return writeAtomically(target, func(w io.Writer) error {
				_, err := io.Copy(w, r)
				return err
			})
		default:
			return nil // links and specials are not restored
		}
	})
}

// statementReader splits an SQL script into statements at top-level
// semicolons, skipping comments except MariaDB's executable /*! ... */ ones,
// as the mariadb client does for dumps.
type statementReader struct {
	r *bufio.Reader
}

func newStatementReader(r io.Reader) *statementReader {
	return &statementReader{r: bufio.NewReaderSize(r, 256<<10)}
}

// Next returns the next statement without its semicolon, or io.EOF.
func (s *statementReader) Next() (string, error) {
	var sb strings.Builder
	for {
		c, err := s.r.ReadByte()
		if errors.Is(err, io.EOF) {
			if stmt := strings.TrimSpace(sb.String()); stmt != "" {
				return stmt, nil
			}
			return "", io.EOF
		}
		if err != nil {
			return "", err
		}
		switch {
		case c == '\'' || c == '"' || c == '`':
			sb.WriteByte(c)
			if err := s.copyQuoted(&sb, c); err != nil {
				return "", err
			}
		case c == '-' && s.startsLineComment():
			if err := s.skipLine(); err != nil {
				return "", err
			}
			sb.WriteByte('\n')
		case c == '#':
			if err := s.skipLine(); err != nil {
				return "", err
			}
			sb.WriteByte('\n')
		case c == '/' && s.peekIs("*"):
			s.r.ReadByte()
			keep := s.peekIs("!")
			if keep {
				sb.WriteString("/*")
			}
			if err := s.copyBlockComment(&sb, keep); err != nil {
				return "", err
			}
			if !keep {
				sb.WriteByte(' ')
			}
		case c == ';':
			if stmt := strings.TrimSpace(sb.String()); stmt != "" {
				return stmt, nil
			}
			sb.Reset()
		default:
			sb.WriteByte(c)
		}
	}
}

func (s *statementReader) peekIs(prefix string) bool {
	b, _ := s.r.Peek(len(prefix))
	return string(b) == prefix
}

// startsLineComment says whether the '-' just read opens "-- " (a second
// dash then whitespace or the end): "a--1" is arithmetic.
func (s *statementReader) startsLineComment() bool {
	b, _ := s.r.Peek(2)
	switch {
	case len(b) == 0 || b[0] != '-':
		return false
	case len(b) == 1:
		return true
	default:
		return b[1] == ' ' || b[1] == '\t' || b[1] == '\n' || b[1] == '\r'
	}
}

func (s *statementReader) skipLine() error {
	_, err := s.r.ReadString('\n')
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

func (s *statementReader) copyQuoted(sb *strings.Builder, quote byte) error {
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return unexpectedEOF(err, "inside a quoted string")
		}
		sb.WriteByte(c)
		switch {
		case c == '\\' && quote != '`':
			e, err := s.r.ReadByte()
			if err != nil {
				return unexpectedEOF(err, "inside a quoted string")
			}
			sb.WriteByte(e)
		case c == quote:
			return nil
		}
	}
}

func (s *statementReader) copyBlockComment(sb *strings.Builder, keep bool) error {
	var prev byte
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return unexpectedEOF(err, "inside a /* comment */")
		}
		if keep {
			sb.WriteByte(c)
		}
		if prev == '*' && c == '/' {
			return nil
		}
		prev = c
	}
}

func unexpectedEOF(err error, where string) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("the script ends %s: %w", where, io.ErrUnexpectedEOF)
	}
	return err
}
