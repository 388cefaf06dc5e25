// Package atomicfile replaces a file so that a reader, or the next start
// after a crash, sees either the old content or the new one, never a
// torn write: the agent's manifest, outbox, baselines and audit state
// all go through it.
//
// A write goes to a temporary file in the same directory (rename is
// atomic only within one file system), is synced, renamed over the
// target, and the directory is synced so the rename itself survives a
// power cut. Temporary files start with TempPrefix, so a reader that
// lists the directory can tell an interrupted write from real content.
package atomicfile
