package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// metaSHA256 is the user metadata key carrying a file's sha256 offsite
// (x-amz-meta-sha256).
const metaSHA256 = "sha256"

// OffsiteConfig says where backups go offsite. The keys are read from files
// of mode 0600; they are never logged nor put in an error.
type OffsiteConfig struct {
	Endpoint      string // host[:port], or http(s)://host[:port]
	Bucket        string
	Region        string // default us-east-1
	AccessKeyFile string
	SecretKeyFile string
	Insecure      bool // plain HTTP: tests and private networks only

	// Attempts per object when an upload or download fails transiently, on
	// top of the S3 client's own per-request retries. Default 3.
	Attempts int
	// MaxRetries of the S3 client per request; 0 keeps minio-go's default.
	MaxRetries int
	// PartSize of multipart uploads; 0 keeps minio-go's default (16 MiB).
	PartSize uint64
	// Headroom kept free when downloading, as a fraction of the backup's
	// size. Default 0.1.
	Headroom float64
	// Backoff before the first retry; doubled each time. Default 1s.
	Backoff time.Duration
	Logger  *slog.Logger
}

// Validate returns every problem of the configuration at once.
func (c OffsiteConfig) Validate() error {
	var errs []error
	if c.Endpoint == "" {
		errs = append(errs, errors.New("endpoint: required"))
	}
	if c.Bucket == "" {
		errs = append(errs, errors.New("bucket: required"))
	}
	if c.AccessKeyFile == "" {
		errs = append(errs, errors.New("access_key_file: required"))
	}
	if c.SecretKeyFile == "" {
		errs = append(errs, errors.New("secret_key_file: required"))
	}
	if c.Attempts < 0 || c.MaxRetries < 0 || c.Headroom < 0 || c.Backoff < 0 {
		errs = append(errs, errors.New("attempts, max_retries, headroom, backoff: must not be negative"))
	}
	return errors.Join(errs...)
}

// Offsite stores sealed backups in an S3-compatible bucket under
// <site>/<YYYY-MM-DD>/<id>/<file>, each object carrying its sha256 as
// metadata, and the manifest uploaded last.
type Offsite struct {
	client   *minio.Client
	bucket   string
	log      *slog.Logger
	attempts int
	partSize uint64
	headroom float64
	backoff  time.Duration
}

// NewOffsite reads the credentials files and sets up the S3 client; it makes
// no request.
func NewOffsite(cfg OffsiteConfig) (*Offsite, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("offsite config: %w", err)
	}
	host, secure, err := parseEndpoint(cfg.Endpoint, cfg.Insecure)
	if err != nil {
		return nil, fmt.Errorf("offsite config: %w", err)
	}
	access, err := readSecretFile("offsite access key file", cfg.AccessKeyFile)
	if err != nil {
		return nil, fmt.Errorf("offsite config: %w", err)
	}
	secret, err := readSecretFile("offsite secret key file", cfg.SecretKeyFile)
	if err != nil {
		return nil, fmt.Errorf("offsite config: %w", err)
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	client, err := minio.New(host, &minio.Options{
		Creds:      credentials.NewStaticV4(access, secret, ""),
		Secure:     secure,
		Region:     region,
		MaxRetries: cfg.MaxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("offsite client for %s: %w", host, err)
	}
	o := &Offsite{
		client: client, bucket: cfg.Bucket, log: cfg.Logger,
		attempts: cfg.Attempts, partSize: cfg.PartSize, headroom: cfg.Headroom, backoff: cfg.Backoff,
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	o.log = o.log.With("bucket", cfg.Bucket)
	if o.attempts == 0 {
		o.attempts = 3
	}
	if o.headroom == 0 {
		o.headroom = 0.1
	}
	if o.backoff == 0 {
		o.backoff = time.Second
	}
	return o, nil
}

func parseEndpoint(endpoint string, insecure bool) (host string, secure bool, err error) {
	if !strings.Contains(endpoint, "://") {
		return endpoint, !insecure, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", false, fmt.Errorf("endpoint: %w", err)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return "", false, fmt.Errorf("endpoint %s: want scheme://host[:port] only", u.Redacted())
	}
	switch {
	case u.Scheme == "https":
		return u.Host, true, nil
	case u.Scheme == "http" && insecure:
		return u.Host, false, nil
	case u.Scheme == "http":
		return "", false, fmt.Errorf("endpoint %s: plain http needs insecure: true", u.Redacted())
	}
	return "", false, fmt.Errorf("endpoint %s: scheme must be http or https", u.Redacted())
}

// ObjectPrefix is where a backup lives offsite: <site>/<YYYY-MM-DD>/<id>, the
// date being the UTC day it was sealed. Only validated parts go into it.
func ObjectPrefix(m Manifest) (string, error) {
	if err := ValidateSite(m.Site); err != nil {
		return "", err
	}
	if err := ValidateID(m.ID); err != nil {
		return "", err
	}
	if m.CreatedAt.IsZero() {
		return "", errors.New("object prefix: manifest has no created_at")
	}
	return m.Site + "/" + m.CreatedAt.UTC().Format(time.DateOnly) + "/" + m.ID, nil
}

// parsePrefix checks a prefix given back to Download against the site and
// the <site>/<date>/<id> shape, and returns it normalised.
// ParsePrefix checks that prefix names one offsite backup of site,
// <site>/<YYYY-MM-DD>/<id>, and returns it without a trailing slash, and the
// backup's id.
func ParsePrefix(site, prefix string) (clean, id string, err error) {
	if err := ValidateSite(site); err != nil {
		return "", "", err
	}
	parts := strings.Split(strings.TrimSuffix(prefix, "/"), "/")
	if len(parts) != 3 || parts[0] != site {
		return "", "", fmt.Errorf("offsite prefix %q: %w: want %s/YYYY-MM-DD/YYYYMMDD_HHMMSS", prefix, ErrInvalidName, site)
	}
	if _, err := time.Parse(time.DateOnly, parts[1]); err != nil || !dateName.MatchString(parts[1]) {
		return "", "", fmt.Errorf("offsite prefix %q: %w: %q is not a date (YYYY-MM-DD)", prefix, ErrInvalidName, parts[1])
	}
	if err := ValidateID(parts[2]); err != nil {
		return "", "", fmt.Errorf("offsite prefix %q: %w", prefix, err)
	}
	return strings.Join(parts, "/"), parts[2], nil
}

// Upload verifies the backup in dir against its manifest, then puts each
// file and, last, the manifest. Each object is checked after it is written
// (size, sha256 metadata, ETag); objects already offsite with the same size
// and sha256 are skipped, so an interrupted upload is resumed by running
// Upload again.
func (o *Offsite) Upload(ctx context.Context, m Manifest, dir string) error {
	d, err := openDir(dir)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	defer d.Close()
	// Verified and read through the same descriptor: a sealed folder is the
	// agent's alone, so what was verified is what is sent.
	local, err := verifyDir(ctx, d, true)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	if local.Site != m.Site || local.ID != m.ID || !sameFiles(local.Files, m.Files) {
		return fmt.Errorf("upload backup %s: the manifest given is not the one in %s", m.ID, dir)
	}
	prefix, err := ObjectPrefix(local)
	if err != nil {
		return fmt.Errorf("upload backup %s: %w", m.ID, err)
	}
	log := o.log.With("site", local.Site, "backup", local.ID, "prefix", prefix)
	for _, f := range local.Files {
		open := func() (uploadSource, error) {
			fh, _, err := d.openFile(f.Name)
			return fh, err
		}
		if err := o.put(ctx, log, prefix+"/"+f.Name, open, f.Size, f.SHA256); err != nil {
			return fmt.Errorf("upload backup %s of %s: %w", local.ID, local.Site, err)
		}
	}
	mf, _, err := d.openFile(ManifestName)
	if err != nil {
		return fmt.Errorf("upload backup %s of %s: %w", local.ID, local.Site, err)
	}
	data, err := io.ReadAll(io.LimitReader(mf, maxManifestBytes+1))
	mf.Close()
	if err != nil {
		return fmt.Errorf("upload backup %s of %s: %w", local.ID, local.Site, err)
	}
	sum := sha256.Sum256(data)
	open := func() (uploadSource, error) { return bytesSource{bytes.NewReader(data)}, nil }
	if err := o.put(ctx, log, prefix+"/"+ManifestName, open, int64(len(data)), hex.EncodeToString(sum[:])); err != nil {
		return fmt.Errorf("upload manifest of backup %s of %s: %w", local.ID, local.Site, err)
	}
	log.Info("backup uploaded", "size_bytes", local.Size, "files", len(local.Files))
	return nil
}

// Prefix returns where Upload puts m, or "" for an invalid manifest.
func (o *Offsite) Prefix(m Manifest) string {
	p, _ := ObjectPrefix(m)
	return p
}

func sameFiles(a, b []File) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Size != b[i].Size || a[i].SHA256 != b[i].SHA256 {
			return false
		}
	}
	return true
}

// uploadSource is what minio-go needs to upload parts in parallel and to
// retry a request from the start.
type uploadSource interface {
	io.Reader
	io.ReaderAt
	io.Seeker
	io.Closer
}

type bytesSource struct{ *bytes.Reader }

func (bytesSource) Close() error { return nil }

// errMismatch: what the store holds after a put is not what was sent.
var errMismatch = errors.New("object differs from what was uploaded")

func (o *Offsite) put(ctx context.Context, log *slog.Logger, key string, open func() (uploadSource, error), size int64, sum string) error {
	return o.retry(ctx, log, "put "+key, func() error {
		if info, err := o.client.StatObject(ctx, o.bucket, key, minio.StatObjectOptions{}); err == nil && info.Size == size && objectSHA256(info) == sum {
			log.Debug("object already offsite", "key", key)
			return nil
		} else if err != nil && !isNotFound(err) {
			return err
		}
		src, err := open()
		if err != nil {
			return err
		}
		defer src.Close()
		up, err := o.client.PutObject(ctx, o.bucket, key, src, size, minio.PutObjectOptions{
			UserMetadata: map[string]string{metaSHA256: sum},
			ContentType:  "application/octet-stream",
			// The store checks each request's (or part's) MD5. The payload
			// is not signed, which is what minio-go does over https anyway;
			// over plain http it would sign chunks instead, which only
			// changes the untested path and some S3 clones mis-handle it
			// for multipart parts.
			SendContentMd5:       true,
			DisableContentSha256: true,
			PartSize:             o.partSize,
		})
		if err != nil {
			return err
		}
		info, err := o.client.StatObject(ctx, o.bucket, key, minio.StatObjectOptions{})
		if err != nil {
			return fmt.Errorf("check uploaded object: %w", err)
		}
		switch {
		case up.Size != size || info.Size != size:
			return fmt.Errorf("%w: size %d (reported %d), want %d", errMismatch, info.Size, up.Size, size)
		case objectSHA256(info) != sum:
			return fmt.Errorf("%w: sha256 metadata %q, want %s", errMismatch, objectSHA256(info), sum)
		case up.ETag != "" && info.ETag != "" && up.ETag != info.ETag:
			return fmt.Errorf("%w: etag %s, upload returned %s", errMismatch, info.ETag, up.ETag)
		}
		log.Debug("object uploaded", "key", key, "size_bytes", size)
		return nil
	})
}

// Download fetches the backup at prefix (<site>/<YYYY-MM-DD>/<id>, as
// Offsite.List or Result.OffsitePrefix give it) into destDir, checking first
// that destDir's filesystem has room for it, and each file's size and sha256
// against the offsite manifest. The manifest is written last, so destDir
// becomes a complete backup only when everything arrived intact.
func (o *Offsite) Download(ctx context.Context, site, prefix, destDir string) (Manifest, error) {
	clean, id, err := ParsePrefix(site, prefix)
	if err != nil {
		return Manifest{}, fmt.Errorf("download backup: %w", err)
	}
	fail := func(err error) (Manifest, error) {
		return Manifest{}, fmt.Errorf("download backup %s: %w", clean, err)
	}
	data, err := o.getManifest(ctx, clean)
	if err != nil {
		return fail(err)
	}
	m, err := decodeManifest(data)
	if err != nil {
		return fail(err)
	}
	if p, _ := ObjectPrefix(m); m.Site != site || m.ID != id || p != clean {
		return fail(fmt.Errorf("manifest is for %s, not %s", p, clean))
	}
	// The parent is a site's backups folder, which the bench can write:
	// nothing in it is followed, and the backup is written sealed.
	parent, err := openOrCreateDir(filepath.Dir(destDir))
	if err != nil {
		return fail(err)
	}
	defer parent.Close()
	name := filepath.Base(destDir)
	if sd, err := parent.sub(name); err == nil {
		_, err := sd.lstat(ManifestName)
		sd.Close()
		if err == nil {
			return fail(fmt.Errorf("%s already holds a backup", destDir))
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fail(err)
	}
	if err := CheckFreeSpace(destDir, m.Size, o.headroom); err != nil {
		return fail(err)
	}
	uid, gid := sealOwner(parent)
	dest, err := parent.mkdir(name, sealedDirMode, uid, gid)
	if err != nil {
		return fail(err)
	}
	defer dest.Close()
	log := o.log.With("site", site, "backup", id, "prefix", clean)
	for _, f := range m.Files {
		key := clean + "/" + f.Name
		if err := o.retry(ctx, log, "get "+key, func() error {
			return o.getFile(ctx, key, dest, f, uid, gid)
		}); err != nil {
			return fail(err)
		}
	}
	if err := dest.writeFile(ManifestName, sealedFileMode, uid, gid, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}); err != nil {
		return fail(err)
	}
	m.Dir, m.OffsitePrefix = destDir, clean
	log.Info("backup downloaded", "dir", destDir, "size_bytes", m.Size)
	return m, nil
}

func (o *Offsite) getFile(ctx context.Context, key string, dest *safeDir, want File, uid, gid int) error {
	obj, err := o.client.GetObject(ctx, o.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return err
	}
	defer obj.Close()
	info, err := obj.Stat()
	if err != nil {
		return err
	}
	if s := objectSHA256(info); s != "" && s != want.SHA256 {
		return fmt.Errorf("%s: %w: sha256 metadata %s, manifest says %s", key, ErrCorrupt, s, want.SHA256)
	}
	return dest.writeFile(want.Name, sealedFileMode, uid, gid, func(w io.Writer) error {
		h := sha256.New()
		n, err := io.CopyBuffer(io.MultiWriter(w, h), ctxReader{ctx, obj}, make([]byte, copyBufferSize))
		if err != nil {
			return err
		}
		if n != want.Size {
			return fmt.Errorf("%s: %w: %d bytes, manifest says %d", key, errMismatch, n, want.Size)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
			return fmt.Errorf("%s: %w: sha256 %s, manifest says %s", key, errMismatch, got, want.SHA256)
		}
		return nil
	})
}

func (o *Offsite) getManifest(ctx context.Context, prefix string) ([]byte, error) {
	key := prefix + "/" + ManifestName
	obj, err := o.client.GetObject(ctx, o.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	data, err := io.ReadAll(io.LimitReader(obj, maxManifestBytes+1))
	if isNotFound(err) {
		return nil, fmt.Errorf("%w: no %s", ErrIncomplete, key)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if len(data) > maxManifestBytes {
		return nil, fmt.Errorf("get %s: larger than %d bytes", key, maxManifestBytes)
	}
	return data, nil
}

// List returns the complete backups of site offsite, oldest first: prefixes
// with a valid manifest whose files are all there with the recorded sizes.
// Each has OffsitePrefix set.
func (o *Offsite) List(ctx context.Context, site string) ([]Manifest, error) {
	if err := ValidateSite(site); err != nil {
		return nil, fmt.Errorf("list offsite backups: %w", err)
	}
	sizes := map[string]map[string]int64{} // prefix -> name -> size
	for obj := range o.client.ListObjects(ctx, o.bucket, minio.ListObjectsOptions{Prefix: site + "/", Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("list offsite backups of %s: %w", site, obj.Err)
		}
		dir, name := path.Split(obj.Key)
		dir = strings.TrimSuffix(dir, "/")
		if sizes[dir] == nil {
			sizes[dir] = map[string]int64{}
		}
		sizes[dir][name] = obj.Size
	}
	var out []Manifest
	for prefix, files := range sizes {
		if _, ok := files[ManifestName]; !ok {
			continue // interrupted upload
		}
		clean, id, err := ParsePrefix(site, prefix)
		if err != nil {
			continue
		}
		data, err := o.getManifest(ctx, clean)
		if err != nil {
			return nil, fmt.Errorf("list offsite backups of %s: %w", site, err)
		}
		m, err := decodeManifest(data)
		if p, _ := ObjectPrefix(m); err != nil || m.ID != id || p != clean {
			o.log.Warn("offsite manifest does not match its prefix; not listed", "prefix", clean, "err", err)
			continue
		}
		complete := true
		for _, f := range m.Files {
			if size, ok := files[f.Name]; !ok || size != f.Size {
				complete = false
			}
		}
		if !complete {
			o.log.Warn("offsite backup misses files; not listed", "prefix", clean)
			continue
		}
		m.OffsitePrefix = clean
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// retry runs op until it succeeds, fails for good, or o.attempts is reached,
// backing off between attempts.
func (o *Offsite) retry(ctx context.Context, log *slog.Logger, what string, op func() error) error {
	wait := o.backoff
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil {
			return nil
		}
		if attempt >= o.attempts || !isTransient(err) || ctx.Err() != nil {
			return fmt.Errorf("%s (attempt %d of %d): %w", what, attempt, o.attempts, err)
		}
		log.Warn("offsite transfer failed; retrying", "op", what, "attempt", attempt, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-t.C:
		}
		wait *= 2
	}
}

// isTransient says whether trying again may help.
func isTransient(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, errMismatch) || errors.Is(err, io.ErrUnexpectedEOF) || minio.IsNetworkOrHostDown(err, false) {
		return true
	}
	// The request got no S3 answer at all: the connection broke.
	var ue *url.Error
	if errors.As(err, &ue) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		switch er.Code {
		case "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "RequestTimeTooSkewed", "BadDigest", "IncompleteBody":
			return true
		}
		return er.StatusCode >= 500 || er.StatusCode == http.StatusTooManyRequests || er.StatusCode == http.StatusRequestTimeout
	}
	return false
}

func isNotFound(err error) bool {
	var er minio.ErrorResponse
	return errors.As(err, &er) && (er.Code == "NoSuchKey" || er.StatusCode == http.StatusNotFound && er.Code != "NoSuchBucket")
}

func objectSHA256(info minio.ObjectInfo) string {
	for k, v := range info.UserMetadata {
		if strings.EqualFold(k, metaSHA256) {
			return v
		}
	}
	return ""
}
