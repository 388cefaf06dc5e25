// Package acl reads POSIX ACLs from their extended attributes and decides
// access for a user the way the Linux kernel does (posix_acl_permission in
// fs/posix_acl.c, and acl_permission_check in fs/namei.c for the mode bits
// when a file has no ACL). It runs in-process, so gobin.access can judge
// another user's view of every parent directory without forking.
package acl
