package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// validateSiteName checks a site name against the DNS host name rules (a site
// is served by its Host header): at most 253 characters, dot-separated labels
// of 1 to 63 lower-case letters, digits and hyphens, no label starting or
// ending with a hyphen. Being a host name also keeps it a safe folder name.
func validateSiteName(name string) error {
	if name == "" {
		return errors.New("site name is empty")
	}
	if len(name) > 253 {
		return fmt.Errorf("site name %q is longer than 253 characters", name)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" {
			return fmt.Errorf("site name %q has an empty label (leading, trailing or double dot)", name)
		}
		if len(label) > 63 {
			return fmt.Errorf("site name %q has a label longer than 63 characters", name)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("site name %q has character %q; allowed are lower-case letters, digits, '-' and '.'", name, c)
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("site name %q has a label starting or ending with '-'", name)
		}
	}
	return nil
}

// siteConfig is the part of Frappe's site_config.json this bench uses, merged
// over sites/common_site_config.json and defaults.
type siteConfig struct {
	DBName      string
	DBPassword  string
	DBHost      string
	DBPort      int
	Maintenance bool
	Fault       fault
}

const (
	defaultDBHost    = "127.0.0.1"
	defaultDBPort    = 3306
	siteConfigFile   = "site_config.json"
	commonConfigFile = "common_site_config.json"
)

func (b *Bench) siteDir(site string) string { return filepath.Join(b.SitesDir(), site) }

func (b *Bench) siteConfigPath(site string) string {
	return filepath.Join(b.siteDir(site), siteConfigFile)
}

// errNoSite says the site has no site_config.json.
var errNoSite = errors.New("site does not exist")

// readSiteConfig reads the site's config; a missing site is errNoSite.
func (b *Bench) readSiteConfig(site string) (*siteConfig, error) {
	raw, err := readJSONObject(b.siteConfigPath(site))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("site %s: %w", site, errNoSite)
	}
	if err != nil {
		return nil, err
	}
	common, err := readJSONObject(filepath.Join(b.SitesDir(), commonConfigFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return parseSiteConfig(site, raw, common)
}

func parseSiteConfig(site string, raw, common map[string]any) (*siteConfig, error) {
	get := func(key string) any {
		if v, ok := raw[key]; ok {
			return v
		}
		return common[key]
	}
	cfg := &siteConfig{DBHost: defaultDBHost, DBPort: defaultDBPort}
	var problems []error
	str := func(key string, dst *string) {
		switch v := get(key).(type) {
		case nil:
		case string:
			if v != "" {
				*dst = v
			}
		default:
			problems = append(problems, fmt.Errorf("%s is %v, want a string", key, v))
		}
	}
	str("db_name", &cfg.DBName)
	str("db_password", &cfg.DBPassword)
	str("db_host", &cfg.DBHost)
	if v := get("db_port"); v != nil {
		// Frappe writes a number, people write strings: take both.
		port, err := strconv.Atoi(strings.TrimSpace(fmt.Sprint(v)))
		if err != nil || port <= 0 || port > 65535 {
			problems = append(problems, fmt.Errorf("db_port is %v, want a port number", v))
		} else {
			cfg.DBPort = port
		}
	}
	switch v := raw["maintenance_mode"].(type) {
	case nil:
	case bool:
		cfg.Maintenance = v
	case json.Number:
		cfg.Maintenance = v.String() != "0"
	case string:
		cfg.Maintenance = v != "" && v != "0"
	default:
		problems = append(problems, fmt.Errorf("maintenance_mode is %v, want 0 or 1", v))
	}
	if f, err := parseFault(raw[faultKey]); err != nil {
		problems = append(problems, err)
	} else {
		cfg.Fault = f
	}
	if cfg.DBName == "" {
		problems = append(problems, errors.New("db_name is missing"))
	}
	if err := errors.Join(problems...); err != nil {
		return nil, fmt.Errorf("site %s: %s: %w", site, siteConfigFile, err)
	}
	return cfg, nil
}

func readJSONObject(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

// updateSiteConfig rewrites the site's config with change applied, keeping
// the keys it does not touch, atomically.
func (b *Bench) updateSiteConfig(site string, change func(map[string]any)) error {
	path := b.siteConfigPath(site)
	raw, err := readJSONObject(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("site %s: %w", site, errNoSite)
	}
	if err != nil {
		return err
	}
	change(raw)
	return writeJSONAtomic(path, raw)
}

func writeJSONAtomic(path string, v any) error {
	data, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writeFileAtomic(path, append(data, '\n'), 0o600)
}

// writeFileAtomic writes a temp file beside path, syncs it and renames it over
// path, so readers (the server) see the old or the new file, never a part.
// An existing file's permissions are kept.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	if info, err := os.Stat(path); err == nil {
		perm = info.Mode().Perm()
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
