// Command gopatrol-probes is gopatrol's five cloud probes in one
// multi-call binary, busybox-style: installed under the names
// gopatrol-probe-aws, -alibaba, -gcp, -azure and -openshift (hard links to
// this one file), it serves the probe its own name says.
//
// Why one file: each probe process maps the file it runs. Five binaries
// are five sets of file pages in memory; five names of one file are one
// set, shared in the page cache by the five processes (issue 11's
// footprint, docs/benchmarks.md). The plugin host sees five plugins all
// the same: each name is a regular file with its line in SHA256SUMS (the
// same sum five times). Hard links, not symlinks: the host refuses
// symlinks, whose target could live outside the checked directory.
//
// Run under any other name it exits 2 and lists the names it knows.
// Third-party probes stay one binary each (plugins/sdk, plugins/example).
package main
