# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
# Helpers shared by the bench scripts. Source it; do not run it.

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${UFFD_BUILD:-$TOP/build}
PATCHES=${UFFD_PATCHES:-$TOP/patches}
# shellcheck disable=SC2034 # used by the scripts that source this
CACHE=${UFFD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/uffd-robust}
TREES="6.1 mainline"
# patched: patches/TREE/series on base. mutant: selftests/mutants/TREE/series
# on base, test-only reverts of fixes that prove a selftest can fail; a tree
# has that variant only when the series file exists.
VARIANTS="unpatched patched mutant"

me=$(basename "$0")

die() {
	echo "$me: error: $*" >&2
	exit 1
}

warn() {
	echo "$me: warning: $*" >&2
}

log() {
	echo "$me: $*" >&2
}

need_tool() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 ||
			die "missing tool '$t' (run 'make deps')"
	done
}

check_tree() {
	local t
	for t in $TREES; do
		[ "$1" = "$t" ] && return 0
	done
	die "unknown tree '$1' (known trees: $TREES)"
}

check_variant() {
	case "$1" in
	unpatched|patched|mutant) ;;
	*) die "unknown variant '$1' (known variants: $VARIANTS)" ;;
	esac
}

# tree_selftest_sub TREE: the name of TREE's mm selftests directory under
# tools/testing/selftests (and its TARGETS= name): vm up to 6.2, mm since.
tree_selftest_sub() {
	case "$1" in
	6.1) echo vm ;;
	*) echo mm ;;
	esac
}

# selftest_patches TREE: the table of the selftest patches TREE's series
# ends with (patches/TREE/selftests.txt: "TEST[,TEST...]<tab>subject" per
# patch). Only a tree with that file has them: 6.1's is a stable backport
# series, and stable takes no new selftests; the bench builds the same
# tests for it from selftests/ instead.
selftest_patches() {
	echo "$PATCHES/$1/selftests.txt"
}

# has_selftest_patch TREE: does TREE's series end with selftest patches?
has_selftest_patch() {
	[ -f "$(selftest_patches "$1")" ]
}

# series_list PDIR: the patch names PDIR/series lists, in order (comments
# and blank lines dropped; nothing when there is no series file).
series_list() {
	[ -f "$1/series" ] || return 0
	sed -e 's/#.*//' "$1/series" | awk 'NF { print $1 }'
}

# vmtests_programs DIR "SCRIPT [ARG...]": the programs of the selftest
# directory DIR (a tree's mm/ or vm/) that SCRIPT runs, one per line: each
# category it names with "run_vmtests.sh -t CATEGORY" (in its arguments or
# in its text) as run_vmtests.sh runs it ('CATEGORY="C" run_test ./PROG
# ...', with run_vmtests.sh's own "name=./PROG" variables), run_vmtests.sh
# among them.
vmtests_programs() {
	local dir=$1 cmd=$2 text=/dev/null cats
	# run_vmtests.sh's own text names categories only in its usage.
	case ${cmd%% *} in
	run_vmtests.sh) ;;
	*.sh) text=$dir/${cmd%% *} ;;
	esac
	cats=$({ echo "$cmd"; cat "$text"; } |
		sed -n 's/.*run_vmtests\.sh -t "\{0,1\}\([A-Za-z0-9_ -]*\).*/\1/p' | xargs -n 1 | sort -u)
	[ -n "$cats" ] || return 0
	echo run_vmtests.sh
	awk -v cats=" $(echo "$cats" | xargs) " '
		/^[A-Za-z_]+=\.\/[^ ]+$/ { split($0, a, "="); var[a[1]] = a[2] }
		/^[[:space:]]*CATEGORY="[^"]+" run_test / {
			c = $1; sub(/^CATEGORY="/, "", c); sub(/"$/, "", c)
			if (index(cats, " " c " ") == 0) next
			p = ($3 == "bash") ? $4 : $3
			if (p ~ /^\$\{[A-Za-z_]+\}$/) p = var[substr(p, 3, length(p) - 3)]
			if (p ~ /^\.\// && !seen[p]++) print substr(p, 3)
		}' "$dir/run_vmtests.sh"
}

# list_entries FILE: the lines of a list file (tests.list and the like)
# with comments and blank lines dropped.
list_entries() {
	sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$1"
}

# check_only LIST ONLY: die unless every name of the comma-separated ONLY
# is a test LIST has, naming the known tests; nothing to check when empty.
check_only() {
	local known name bad=
	[ -n "$2" ] || return 0
	known=$(list_entries "$1" | awk '{ print $1 }')
	for name in ${2//,/ }; do
		echo "$known" | grep -qxF -- "$name" || bad+=" $name"
	done
	[ -z "$bad" ] ||
		die "no such test:$bad (known tests of ${1#"$TOP"/}: $(echo "$known" | xargs))"
}

# new_run_dir DIR: make DIR/YYYYmmdd-HHMMSS (a suffix when taken), point
# DIR/latest at it and print its path: each run keeps its own evidence.
new_run_dir() {
	local stamp run n=1
	stamp=$(date +%Y%m%d-%H%M%S)
	mkdir -p "$1"
	run=$1/$stamp
	while ! mkdir "$run" 2>/dev/null; do
		n=$((n + 1))
		run=$1/$stamp-$n
	done
	ln -sfn "$(basename "$run")" "$1/latest"
	echo "$run"
}

# variant_patches TREE VARIANT: the directory whose 'series' VARIANT applies.
variant_patches() {
	case "$2" in
	patched) echo "$PATCHES/$1" ;;
	mutant) echo "$TOP/selftests/mutants/$1" ;;
	esac
}

# tree_variants TREE: the variants TREE is built and tested in.
tree_variants() {
	local v
	for v in $VARIANTS; do
		[ "$v" = mutant ] && [ ! -f "$(variant_patches "$1" mutant)/series" ] && continue
		echo "$v"
	done
}

# tree_variant_args USAGE ARGS...: set tree and variant from exactly two
# arguments, checked, or die with "usage: SCRIPT USAGE".
tree_variant_args() {
	local usage=$1
	shift
	[ $# -eq 2 ] || die "usage: $me $usage"
	tree=$1 variant=$2
	check_tree "$tree"
	check_variant "$variant"
	flavour_init
}

# flavour_init: the kernel flavour from UFFD_FLAVOUR ("", debug: the
# memory sanitisers of config/flavour-debug.config on top, perf: no
# debug checks, for make bench, kvm: KVM built in, for the nested
# async page fault test; parts combine: kvm-debug) and kname, the
# name of the build, initramfs and run directories of TREE-VARIANT in it.
# The expectations of TREE-VARIANT apply to every flavour.
flavour_init() {
	local part
	flavour=${UFFD_FLAVOUR:-}
	# A flavour combines parts with '-' (kvm-debug); each must be known.
	for part in ${flavour//-/ }; do
		case "$part" in
		debug|kvm) ;;
		perf) [ "$flavour" = perf ] || die "flavour '$flavour': perf does not combine" ;;
		*) die "unknown flavour '$flavour' (UFFD_FLAVOUR: empty, debug, perf, kvm or kvm-debug)" ;;
		esac
	done
	# shellcheck disable=SC2034 # used by the scripts that source this
	kname=$tree-$variant${flavour:+-$flavour}
}

# base_get TREE KEY: one field of $PATCHES/TREE/base (key=value lines).
base_get() {
	sed -n "s/^$2=//p" "$PATCHES/$1/base"
}

# pack_cpio DIR PATH...: PATH... of DIR (and what they hold) as a newc
# archive on stdout, owned by root, in a stable order. The kernel unpacks
# the archives of an initrd one after the other, so one appended to
# another adds files to it.
pack_cpio() {
	local dir=$1
	shift
	(cd "$dir" && find "$@" -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --owner=0:0 --quiet)
}

# Write stdin to FILE through a temporary name so FILE is never half-written.
write_atomic() {
	local f=$1 tmp
	tmp=$(mktemp "$f.tmp.XXXXXX") || die "cannot create a temporary file next to $f"
	if ! cat >"$tmp"; then
		rm -f "$tmp"
		die "cannot write $f"
	fi
	mv -f "$tmp" "$f"
}

# Print the URI of the machine's Debian archive: the source that carries the
# release's own codename suite, from one-line or deb822 sources files.
archive_uri() {
	local codename files f
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	[ -n "$codename" ] || die "cannot tell the Debian release from /etc/os-release"
	files=$(ls /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
		/etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	for f in $files; do
		case "$f" in
		*.sources)
			awk -v cn="$codename" '
				function flush() {
					if (uri != "" && suites ~ ("(^| )" cn "( |$)") && types ~ /(^| )deb( |$)/)
						{ print uri; found = 1; exit }
					uri = ""; suites = ""; types = ""
				}
				/^[ \t]*$/ { flush(); next }
				/^URIs:/ { uri = $2 }
				/^Suites:/ { $1 = ""; suites = $0 }
				/^Types:/ { $1 = ""; types = $0 }
				END { if (!found) flush() }' "$f"
			;;
		*)
			awk -v cn="$codename" '
				$1 == "deb" {
					i = 2
					if ($i ~ /^\[/) while ($i !~ /\]$/) i++
					if ($i ~ /^\[/ || $(i) ~ /\]$/) i++
					if ($(i + 1) == cn) { print $i; exit }
				}' "$f"
			;;
		esac
	done | head -n 1
}

# The suites of the machine's Debian archive that fetch-tree.sh searches
# for a tree's package beyond the machine's own apt sources, by the aliases
# that move from release to release but never vanish: a recorded version
# is found wherever the archive moved it (experimental to unstable, a
# release to stable-backports).
# shellcheck disable=SC2034 # used by the scripts that source this
ARCHIVE_SUITES="experimental unstable testing stable-backports stable oldstable-backports oldstable"

# private_apt SUITE deb|deb-src: set the array apt_opts to an apt
# configuration that sees SUITE of the machine's own Debian archive, with its
# sources list and index under the cache (refreshed at most once an hour),
# so that the machine's apt configuration is never edited.
private_apt() {
	private_apt_try "$@" || die "apt-get update of suite '$1' failed (see $CACHE/apt/$1*/update.log)"
}

# private_apt_try SUITE deb|deb-src: private_apt, returning non-zero
# instead of dying when the suite's index cannot be fetched.
private_apt_try() {
	local suite=$1 type=$2 uri aptdir
	uri=$(archive_uri)
	[ -n "$uri" ] || die "no Debian archive URI found in the machine's apt sources"
	aptdir=$CACHE/apt/$suite
	[ "$type" = deb ] || aptdir=$aptdir-$type
	mkdir -p "$aptdir/lists/partial" "$aptdir/parts"
	echo "$type $uri $suite main" | write_atomic "$aptdir/sources.list"
	apt_opts=(-o "Dir::Etc::SourceList=$aptdir/sources.list"
		-o "Dir::Etc::SourceParts=$aptdir/parts"
		-o "Dir::State::Lists=$aptdir/lists"
		-o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=")
	# A stamp of our own: apt dates the lists by the archive's files.
	if [ -z "$(find "$aptdir/updated" -mmin -60 2>/dev/null)" ]; then
		log "updating the private apt index for suite '$suite' ($type)"
		apt-get -q "${apt_opts[@]}" update >"$aptdir/update.log" 2>&1 || return 1
		touch "$aptdir/updated"
	fi
}

# bench_git_identity: export the fixed author and committer the bench's
# git commits and 'git am' use, so that they work on a machine without a
# git identity and give the same commits everywhere.
bench_git_identity() {
	export GIT_AUTHOR_NAME="uffd-robust bench" GIT_AUTHOR_EMAIL="bench@uffd-robust.invalid"
	export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"
}

# git_base_commit DIR MESSAGE: make the files in DIR one commit, dated
# 2000-01-01, tagged 'base' (what apply-series.sh applies a series to).
# Debian's tarball carries a .gitignore that ignores every top-level path
# (a packaging rule): the add is forced.
git_base_commit() {
	(
		bench_git_identity
		cd "$1" || exit 1
		git init -q -b base-branch
		git config gc.auto 0
		git add -f -A .
		GIT_AUTHOR_DATE="2000-01-01T00:00:00Z" GIT_COMMITTER_DATE="2000-01-01T00:00:00Z" \
			git commit -q -m "$2"
		git tag base
	)
}

# kmake_init SRC OBJ: set the array kmake to the bench's make command for
# the kernel in SRC built in OBJ (ccache when present, fixed build
# identity), so that every script builds the same objects the same way.
kmake_init() {
	kmake=(make -C "$1" O="$2" ARCH=x86_64 -j"$(nproc)"
		KBUILD_BUILD_TIMESTAMP="2000-01-01" KBUILD_BUILD_USER=bench
		KBUILD_BUILD_HOST=uffd-robust)
	if command -v ccache >/dev/null 2>&1; then
		export CCACHE_BASEDIR=$BUILD CCACHE_NOHASHDIR=1
		kmake+=(CC="ccache gcc" HOSTCC="ccache gcc")
	fi
}

# TAP for the gate scripts: 'tap ok|fail NAME [DIAGNOSTIC...]' prints one
# numbered case with its diagnostics; tap_plan prints the plan last and
# returns non-zero when a case failed.
tap_n=0 tap_failed=0
tap() {
	local ok=$1 name=$2 l
	shift 2
	tap_n=$((tap_n + 1))
	if [ "$ok" = ok ]; then
		echo "ok $tap_n - $name"
	else
		tap_failed=$((tap_failed + 1))
		echo "not ok $tap_n - $name"
	fi
	for l in "$@"; do echo "#   $l"; done
}

tap_plan() {
	echo "1..$tap_n"
	[ "$tap_failed" = 0 ]
}

# wrap_list LIST BIN ST: for each "NAME LIMIT CMD [ARG...]" line of LIST,
# a script BIN/NAME that runs CMD with its arguments from /tests, and the
# guest's ST/tests.list naming it with its limit. ST/expectations is left
# to the caller.
wrap_list() {
	local name limit cmd
	: >"$3/tests.list"
	while read -r name limit cmd; do
		case "$name" in ''|'#'*) continue ;; esac
		printf '#!/bin/sh\ncd /tests && exec ./%s\n' "$cmd" >"$2/$name"
		chmod +x "$2/$name"
		printf '%s\t%s\n' "$name" "$limit" >>"$3/tests.list"
	done <"$1"
}

# kbuild_progress LABEL LOG CMD...: run the kbuild command CMD with its
# output in LOG and, while it runs, say every minute how many objects it has
# built (of about as many as the last build that logged to LOG, when one
# did). Returns CMD's exit code.
kbuild_progress() {
	local label=$1 log=$2 pid rc=0 t0=$SECONDS n last="" next=60
	shift 2
	[ -f "$log.steps" ] && last=$(cat "$log.steps")
	"$@" >"$log" 2>&1 &
	pid=$!
	# A background job ignores the terminal's Ctrl-C: pass it on.
	trap 'kill "$pid" 2>/dev/null; exit 130' INT TERM
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1
		[ $((SECONDS - t0)) -ge "$next" ] || continue
		next=$((next + 60))
		n=$(grep -cE '^  (CC|AS|LD|AR|HOSTCC|GEN)' "$log" || true)
		log "$label: $n objects built${last:+ of about $last}, $((SECONDS - t0)) s"
	done
	wait "$pid" || rc=$?
	trap - INT TERM
	n=$(grep -cE '^  (CC|AS|LD|AR|HOSTCC|GEN)' "$log" || true)
	# An incremental build's few objects say nothing of a whole one's.
	if [ "$rc" = 0 ] && [ "$n" -gt "$((${last:-0} / 2))" ]; then
		echo "$n" >"$log.steps"
	fi
	return "$rc"
}

timer_start() {
	STAGE_T0=$(date +%s.%N)
}

timer_end() {
	local t1
	t1=$(date +%s.%N)
	printf '%s: stage %s took %.1f s\n' "$me" "$1" \
		"$(echo "$t1 - $STAGE_T0" | bc)" >&2
	mkdir -p "$BUILD"
	printf '%s %s %.1f\n' "$(date -u +%FT%TZ)" "$1" \
		"$(echo "$t1 - $STAGE_T0" | bc)" >>"$BUILD/stage-times.log"
}
