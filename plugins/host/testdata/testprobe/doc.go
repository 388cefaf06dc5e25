// Command testprobe is a scripted probe for plugins/host's tests. Copies
// of it run under several names; each reads its behaviour from variables
// suffixed with its name (gopatrol-probe-NAME):
//
//	TESTPROBE_ATTRS_NAME=k=v,k=v   attributes Detect returns
//	TESTPROBE_PANIC_NAME=FILE      panic in Detect if FILE exists (and remove it)
//	TESTPROBE_STDOUT_NAME=TEXT     print TEXT on stdout before Serve (the bug)
//	TESTPROBE_FORK_NAME=1          start a grandchild (sleep) that inherits stdout
//	TESTPROBE_EXIT_NAME=CODE       say why on stderr and exit with CODE before Serve
//	TESTPROBE_SLOWSTART_NAME=FILE  if FILE exists, create FILE.seen and hang before Serve
//	TESTPROBE_INFOSLEEP_NAME=DUR   sleep DUR in every Info call but the first
package main
