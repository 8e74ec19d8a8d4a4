#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Host-side tests of the bench itself: the console parser judged on
# recorded console logs (tests/console/), and the scripts' answers to bad
# input. Prints TAP and a last line "N passed, N failed".
set -u -o pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
C=tests/console
n=0 pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

result() {
	n=$((n + 1))
	if [ "$1" = ok ]; then
		pass=$((pass + 1))
		echo "ok $n $2"
	else
		fail=$((fail + 1))
		echo "not ok $n $2"
		sed 's/^/#   /' "$tmp/out" | tail -n 15
	fi
}

# expect NAME WANT_RC REGEX CMD...: CMD exits WANT_RC and prints REGEX.
expect() {
	local name=$1 want=$2 rx=$3 rc=0
	shift 3
	"$@" >"$tmp/out" 2>&1 || rc=$?
	if [ "$rc" != "$want" ]; then
		echo "# $name: exit $rc, want $want" >>"$tmp/out"
		result fail "$name"
	elif ! grep -Eq -- "$rx" "$tmp/out"; then
		echo "# $name: output lacks /$rx/" >>"$tmp/out"
		result fail "$name"
	else
		result ok "$name"
	fi
}

parse() {
	local log=$1 kernel=$2
	shift 2
	python3 scripts/parse-console.py --kernel "$kernel" \
		--expectations "$C/expectations" --tests "$C/tests.list" "$@" "$C/$log"
}

echo "TAP version 13"

# The parser on recorded consoles: "fixture kernel rc regex [extra args]".
while IFS=$'\t' read -r log kernel rc rx extra; do
	case "$log" in ''|'#'*) continue ;; esac
	# shellcheck disable=SC2086
	expect "parse-console: $log on $kernel" "$rc" "$rx" parse "$log" "$kernel" $extra
done <"$C/cases"

# Bad input to the scripts: one-line error naming the cause, non-zero exit.
for s in fetch-tree.sh prepare-tree.sh; do
	expect "$s rejects an unknown tree" 1 "error: unknown tree 'nosuch'" scripts/$s nosuch
done
expect "build-kernel.sh rejects an unknown tree" 1 "error: unknown tree 'nosuch'" \
	scripts/build-kernel.sh nosuch patched
expect "build-kernel.sh rejects an unknown variant" 1 "error: unknown variant 'half'" \
	scripts/build-kernel.sh 6.1 half
expect "run-vm.sh rejects an unknown tree" 1 "error: unknown tree 'nosuch'" \
	scripts/run-vm.sh nosuch patched
expect "run-vm.sh names a missing kernel" 1 "error: no kernel at" \
	env UFFD_BUILD="$tmp/empty" scripts/run-vm.sh 6.1 patched
expect "parse-console.py names a missing log" 2 "error: no such file" \
	parse no-such.log 6.1-patched
expect "parse-console.py rejects a bad expectation" 2 "unknown expectation 'maybe'" \
	python3 scripts/parse-console.py --kernel 6.1-patched --tests "$C/tests.list" \
	--expectations "$C/bad-expectations" "$C/clean.log"

echo "1..$n"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
