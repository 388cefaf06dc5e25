#!/usr/bin/env bash
# fuzz.sh runs every fuzz target of the module, one after the other, each
# for FUZZTIME (default 3s; `make fuzz` passes 60s). Targets are found by
# reading the test files for `func FuzzX(f *testing.F)`, so a target added
# anywhere in the tree runs without editing this script.
#
# It prints each target with its time, goes on after a failure, and exits
# 1 if any target failed. A failing input is written by go test to the
# package's testdata/fuzz/FuzzX/ (commit it: it becomes a regression test
# of the plain `go test` run); the growing corpus stays in Go's cache
# (go env GOCACHE)/fuzz. The instrumented test binaries, one per package,
# are built in a temporary directory removed at exit. Nothing else is
# written.
#
# Environment: FUZZTIME (a go test -fuzztime value: 3s, 60s, 1000x),
# FUZZMINIMIZETIME (how long one new input is minimized, default 3s),
# FUZZPARALLEL (fuzzing workers, default all cores), FUZZ (a regexp:
# run only the targets whose package/Name matches), GO (the go command).
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-3s}
FUZZ=${FUZZ:-.}
# Go minimizes every new interesting input for up to a minute by default;
# with multi-KB seeds (goasm, goelf) that stalls a 3-second run.
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-3s}
parallel=()
if [[ -n ${FUZZPARALLEL:-} ]]; then
	parallel=(-test.parallel "$FUZZPARALLEL")
fi

# One "dir name" line per target, sorted. git ls-files keeps out what is
# not part of the tree (build output, other worktrees); outside a git
# checkout, find does the same job.
list_test_files() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files --cached --others --exclude-standard -- '*_test.go'
	else
		find . -name '*_test.go' -not -path './bin/*' | sed 's|^\./||'
	fi
}
mapfile -t targets < <(list_test_files | xargs -r grep -H -E '^func Fuzz[A-Za-z0-9_]*\([A-Za-z_][A-Za-z0-9_]* \*testing\.F\)' |
	sed -E 's|^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*|\1 \2|; s|^[^ /]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*|. \1|' |
	grep -E -- "$FUZZ" | sort -u || true)

if [[ ${#targets[@]} -eq 0 ]]; then
	echo "fuzz: no fuzz targets match FUZZ=$FUZZ" >&2
	exit 1
fi

# A hard bound per target on top of -fuzztime: gathering the baseline
# coverage of a grown corpus comes on top.
deadline=$(( $(sed -E 's/[^0-9].*//' <<<"$FUZZTIME" || echo 0) ))
case $FUZZTIME in
*m) deadline=$((deadline * 60)) ;;
*h) deadline=$((deadline * 3600)) ;;
*x) deadline=600 ;;
esac
deadline=$((deadline + 600))

# Each package's instrumented test binary is built once (go test -c -fuzz)
# and run once per target, from the package directory so that failing
# inputs land in its testdata/fuzz/, with the corpus where go test keeps
# it. The binaries live in a temporary directory removed on exit.
bindir=$(mktemp -d)
trap 'rm -rf "$bindir"' EXIT
gocache=$("$GO" env GOCACHE)
declare -A importpath
while read -r ip d; do
	importpath[$d]=$ip
done < <("$GO" list -f '{{.ImportPath}} {{.Dir}}' $(printf './%s\n' "${targets[@]% *}" | sort -u))

echo "fuzz: ${#targets[@]} targets, FUZZTIME=$FUZZTIME each"
failed=()
start=$SECONDS
built=""
for t in "${targets[@]}"; do
	dir=${t% *} name=${t#* }
	abs=$(cd "$dir" && pwd)
	bin=$bindir/$(tr / _ <<<"$dir").test
	log=$bindir/log
	t0=$SECONDS
	if [[ $built != "$dir" ]]; then
		built=$dir
		if ! "$GO" test -c -fuzz . -o "$bin" "./$dir" >"$log" 2>&1; then
			printf 'FAIL  %-40s %-28s %4ds (build)\n' "$dir" "$name" $((SECONDS - t0))
			sed 's/^/      /' "$log"
			failed+=("$dir (build)")
			continue
		fi
	fi
	if [[ ! -x $bin ]]; then
		failed+=("$dir $name (not built)")
		continue
	fi
	run_target() {
		(cd "$dir" && timeout --kill-after=10s "$deadline" "$bin" -test.run '^$' -test.fuzz "^${name}\$" \
			-test.fuzztime "$FUZZTIME" -test.fuzzminimizetime "$FUZZMINIMIZETIME" -test.fuzzcachedir "$gocache/fuzz/${importpath[$abs]:-$dir}" \
			-test.paniconexit0 -test.timeout "$((deadline + 60))s" ${parallel[@]+"${parallel[@]}"}) >"$log" 2>&1
	}
	ok=false
	if run_target; then
		ok=true
	elif grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
		# Go's fuzzing coordinator can end a time-bounded run with
		# "context deadline exceeded" and no failing input when the
		# deadline falls inside a worker's call: a race of the toolchain,
		# not a finding. A crasher always writes its input; only this
		# case is run again, once.
		echo "      (coordinator deadline race, no failing input: running $name again)"
		run_target && ok=true
	fi
	if $ok; then
		printf 'ok    %-40s %-28s %4ds\n' "$dir" "$name" $((SECONDS - t0))
	else
		printf 'FAIL  %-40s %-28s %4ds\n' "$dir" "$name" $((SECONDS - t0))
		sed 's/^/      /' "$log"
		failed+=("$dir $name")
	fi
done
echo "fuzz: ${#targets[@]} targets in $((SECONDS - start))s"
if [[ ${#failed[@]} -gt 0 ]]; then
	echo "fuzz: ${#failed[@]} failed:" >&2
	printf '  %s\n' "${failed[@]}" >&2
	echo "fuzz: failing inputs are in each package's testdata/fuzz/<Target>/: fix the parser and commit them" >&2
	exit 1
fi
