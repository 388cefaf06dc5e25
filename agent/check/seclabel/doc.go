// Package seclabel holds gocache.selinux: the SELinux labels of the build
// and module caches, and the mounts they live on (source section 3.3).
package seclabel
