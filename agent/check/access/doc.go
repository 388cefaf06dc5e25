// Package access decides file-access questions about the target machine:
// it answers "can the build user write here?" and "can the build
// user run a binary here?" by doing it, never by reading mode bits: root
// bypasses modes, ACLs, read-only and noexec mounts, quotas and full disks
// all decide differently from what `ls -l` suggests.
//
// As another user, writes are probed in-process on a goroutine locked to an
// OS thread whose filesystem credentials alone are switched (setfsuid,
// setfsgid and setgroups as raw, per-thread system calls). That is what the
// kernel checks file access against; switching them drops root's
// CAP_DAC_OVERRIDE for that thread only. It is preferred over `sh -c` run
// as the user because it costs no fork, needs no shell or tools on the
// target, reports the exact errno, and cleans up even when the caller gives
// up: the goroutine removes what it made when the system call returns, and
// its thread is discarded afterwards. Binaries are run as the user with
// Target.Command, which is what exec permission means.
//
// The name says what it decides (access), not how (probing): "probe" in
// gopatrol means the cloud probe plugins.
package access
