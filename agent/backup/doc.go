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
package backup
