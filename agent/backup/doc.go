// Package backup is what the agent does with a site's backup after the bench
// has written it: seal it (compress, checksum, move into a per-backup folder
// and write a manifest last), verify it, ship it offsite to S3-compatible
// storage and fetch it back, and check that a restore fits on the disk before
// anything is downloaded or unpacked.
//
// A backup is complete only when its manifest exists, locally
// (<backups>/<ts>/manifest.json) and offsite (<site>/<date>/<ts>/manifest.json).
// The manifest is always written last, so an interrupted seal or upload leaves
// a folder or prefix without one, which is never reported as a backup.
//
// The bench container can write the site's backups folder and the agent runs
// as root, so nothing there is trusted: every file and folder is opened
// without following links (openat with O_NOFOLLOW at every component below
// the first folder others can write), must be a regular file with one link,
// and is copied, hashed and owned through its descriptor. A sealed backup is
// the agent's (root, the bench's group, 0750/0640): the bench can read it to
// restore, not change it; Verify refuses one that is not. Old backups are
// pruned by a Retention policy (SelectPrune, RemoveLocal, Offsite.Delete).
package backup
