#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Host-side tests of the bench itself: the console parser judged on
# recorded console logs (tests/console/), and the scripts' answers to bad
# input. Prints TAP and a last line "N passed, N failed, N skipped".
set -u -o pipefail
cd "$(dirname "$0")/.." || exit 2
TOP=$PWD
C=tests/console
n=0 pass=0 fail=0 skip=0
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
expect "build-kernel.sh rejects a flavour with an unknown part" 1 "error: unknown flavour 'kvm-nosuch'" \
	env UFFD_FLAVOUR=kvm-nosuch scripts/build-kernel.sh 6.1 patched
expect "build-kernel.sh rejects perf combined with another part" 1 "error: flavour 'perf-kvm': perf does not combine" \
	env UFFD_FLAVOUR=perf-kvm scripts/build-kernel.sh 6.1 patched
expect "prepare-tree.sh names a tree without mutants" 1 \
	"error: mainline has no mutant variant: .*selftests/mutants/mainline/series does not exist" \
	scripts/prepare-tree.sh --variant mutant mainline
expect "run-vm.sh rejects an unknown tree" 1 "error: unknown tree 'nosuch'" \
	scripts/run-vm.sh nosuch patched
expect "run-vm.sh names an unknown test before anything else" 1 \
	"error: no such test: nosuch \(known tests of tests/vm/tests.list: sleeper talker leftover quick\)" \
	env UFFD_BUILD="$tmp/empty" UFFD_SELFTESTS="$TOP/tests/vm" scripts/run-vm.sh --only quick,nosuch 6.1 patched
expect "make vm-test names an unknown test before building" 2 \
	"run-vm.sh: error: no such test: no-such-test \(known tests of selftests/tests.list: uffd-smoke " \
	make -s vm-test-args ONLY=no-such-test
expect "run-vm.sh names a missing kernel" 1 "error: no kernel at" \
	env UFFD_BUILD="$tmp/empty" scripts/run-vm.sh 6.1 patched
expect "parse-console.py names a missing log" 2 "error: no such file" \
	parse no-such.log 6.1-patched
expect "parse-console.py rejects a bad expectation" 2 "unknown expectation 'maybe'" \
	python3 scripts/parse-console.py --kernel 6.1-patched --tests "$C/tests.list" \
	--expectations "$C/bad-expectations" "$C/clean.log"

# A series is applied in order; one that does not apply is named, with git's reason.
mkrepo() {
	rm -rf "$tmp/repo" "$tmp/p" && mkdir -p "$tmp/repo" "$tmp/p" && (
		cd "$tmp/repo" && git init -q && printf 'one\ntwo\n' >f &&
		git add f && git -c user.name=t -c user.email=t@t commit -qm base &&
		git tag base && printf 'one\nTWO\n' >f &&
		git -c user.name=t -c user.email=t@t commit -qam "f: shout two" &&
		git format-patch -q -1 -o "$tmp/p" && git reset -q --hard base)
}
mkrepo
echo "0001-f-shout-two.patch" >"$tmp/p/series"
expect "apply-series.sh applies a series" 0 "1 patch\(es\) applied" \
	env GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t scripts/apply-series.sh "$tmp/repo" "$tmp/p"
sed -i 's/^-two/-three/' "$tmp/p/0001-f-shout-two.patch"
expect "apply-series.sh names a patch that does not apply" 1 \
	"error: patch '0001-f-shout-two.patch' does not apply: error: patch failed: f:1" \
	env GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t scripts/apply-series.sh "$tmp/repo" "$tmp/p"
echo "0002-missing.patch" >>"$tmp/p/series"
expect "apply-series.sh names a patch the series lacks" 1 \
	"names '0002-missing.patch', which does not exist" scripts/apply-series.sh "$tmp/repo" "$tmp/p"

# vmtests_programs: what a tree's script runs of run_vmtests.sh's
# categories (tests/upstream/ is a cut of mainline's).
vp() { bash -c '. scripts/lib.sh && vmtests_programs tests/upstream "$1" | xargs' vp "$1"; }
expect "vmtests_programs: ksft_userfaultfd.sh runs its category" 0 \
	"^run_vmtests.sh uffd-unit-tests uffd-stress uffd-wp-mremap$" vp ksft_userfaultfd.sh
expect "vmtests_programs: categories given as arguments, not the usage's" 0 \
	"^run_vmtests.sh memfd_secret va_high_addr_switch.sh$" vp 'run_vmtests.sh -t "memfd_secret hugevm mlock"'
expect "vmtests_programs: a program runs nothing else" 0 "^$" vp "uffd-unit-tests"

# compare-warnings.py: diagnostics the patched tree adds, whatever moved.
W=tests/warnings
cw() { python3 scripts/compare-warnings.py --strip /src/6.1-unpatched/ --strip /src/6.1-patched/ \
	--strip ../../src/6.1-patched/ --strip /tmp/cocci/unpatched/ --strip /tmp/cocci/patched/ "$@"; }
expect "compare-warnings.py: moved warnings are known" 0 "^0 new, 5 known$" cw $W/base.log $W/moved.log
expect "compare-warnings.py: a new warning is named" 1 \
	"khugepaged.c:2807:13: warning: variable 'u' set but not used" cw $W/base.log $W/new.log
expect "compare-warnings.py: a second copy of a known warning is new" 1 "^1 new, 5 known$" \
	cw $W/base.log $W/again.log

# bench-report.py on recorded consoles (tests/bench/): ratios, goals, a
# livelock reported as such, a missing figure refused, plots drawn.
B=tests/bench
br() { python3 scripts/bench-report.py --tree mainline --out "$tmp/br" "$@"; }
two_boots=("unpatched=$B/unpatched-1.log" "unpatched=$B/unpatched-2.log"
	"patched=$B/patched-1.log" "patched=$B/patched-2.log")
expect "bench-report.py: a ratio under its goal is not met" 0 \
	"fault.anon \| 5050 \| 2.0% \| 4800 \| 4.2% \| 0.950 \| \*\*not met" \
	br --no-plots "${two_boots[@]}"
expect "bench-report.py: the guard's growth with N is measured" 0 \
	"whole section at N=4096, unpatched/patched: 10.1x \(goal >= 10x\): met" \
	br --no-plots "${two_boots[@]}"
expect "bench-report.py: the count's cost within a boot is MISSING less MINOR" 0 \
	"pair \(patched's MISSING - MINOR less unpatched's\): \+0.450 us" \
	br --no-plots "${two_boots[@]}"
expect "bench-report.py: the within-boot register estimate is judged" 0 \
	"upkeep.register patched/unpatched .*over unpatched's\): 0.953 \(goal >= 0.99\): \*\*not met" \
	br --no-plots unpatched=$B/unpatched-1.log patched=$B/patched-1.log
expect "bench-report.py: the within-boot mprotect estimate is judged" 0 \
	"upkeep.mprotect patched/unpatched .*over unpatched's\): 0.998 \(goal >= 0.99\): met" \
	br --no-plots unpatched=$B/unpatched-1.log patched=$B/patched-1.log
# Consoles of a uffd-bench from before the pair: said, and not a missing figure.
for v in unpatched patched; do grep -v "register_pair\|mprotect_pair" "$B/$v-1.log" >"$tmp/$v-nopair.log"; done
expect "bench-report.py: consoles without the register pair say so" 0 "^Not in these consoles" \
	br --no-plots "unpatched=$tmp/unpatched-nopair.log" "patched=$tmp/patched-nopair.log"
expect "bench-report.py: a register pair on one kernel only is a missing figure" 1 \
	"error: no figure for patched upkeep.register_pair" \
	br --no-plots "unpatched=$B/unpatched-1.log" "patched=$tmp/patched-nopair.log"
expect "bench-report.py: 6.1 has no guard to beat, the 10x goal is n/a" 0 \
	"unpatched/patched \(goal >= 10x against the i_mmap walk\): n/a, the unpatched kernel has no guard" \
	python3 scripts/bench-report.py --tree 6.1 --out "$tmp/br" --no-plots \
	unpatched=$B/unpatched-1.log patched=$B/patched-1.log
expect "bench-report.py: a livelock is reported as a hang" 0 \
	"^\| 4 \| hang \(livelock\) \| 0.50 / 0.90 \| hang \(livelock\) \| 0.84 / 1.90 \| met" \
	br --no-plots unpatched=$B/livelock.log patched=$B/patched-1.log
expect "bench-report.py: a missing figure fails the report" 1 \
	"error: no figure for patched fault.shmem" \
	br --no-plots unpatched=$B/unpatched-1.log patched=$B/missing.log
expect "bench-report.py rejects an argument without VARIANT=" 2 "not VARIANT=CONSOLE" \
	br $B/unpatched-1.log
plots_drawn() {
	br "$@" >/dev/null && for f in ratios release guard; do
		file "$tmp/br/mainline-$f.png" | grep -q "PNG image data" || return 1
	done && echo "3 plots drawn"
}
expect "bench-report.py draws its plots" 0 "^3 plots drawn$" \
	plots_drawn unpatched=$B/unpatched-1.log patched=$B/patched-1.log

# series-hygiene.py on the series as they are, then broken copies.
# hyg DIR [TREE]: the checks of DIR as a copy of patches/TREE (mainline).
hyg() {
	local t=${2:-mainline}
	python3 scripts/series-hygiene.py "$1" --tree "$t" --exceptions patches/lint.exceptions \
		--base-commit "$(sed -n 's/^base-commit: //p' "patches/$t/0000-cover-letter.patch")" \
		--package "$(sed -n 's/^package=//p' "patches/$t/base")" \
		--version "$(sed -n 's/^version=//p' "patches/$t/base")"
}
# hyg_fails DIR [TREE]: print the failures; exit 1 if any, else say all passed.
hyg_fails() {
	hyg "$@" >"$tmp/hyg"
	grep "^not ok" "$tmp/hyg" && return 1
	echo "all $(wc -l <"$tmp/hyg") checks pass"
}
expect "series-hygiene.py passes the 6.1 series" 0 "^all [0-9]+ checks pass" hyg_fails patches/6.1 6.1
# 6.1's patch 1 is a stable backport: its form is checked as stable's.
sp61() { rm -rf "$tmp/s" && cp -r patches/6.1 "$tmp/s"; }
sp61; sed -i 's/^commit fe4cdc2c4e248f48de23bc778870fd71e772a274 upstream\./commit fe4cdc2c4e24 upstream./' "$tmp/s"/0001-*.patch
expect "series-hygiene.py: a backport naming a short upstream id" 1 "6.1/1.*full 40-digit" hyg_fails "$tmp/s" 6.1
sp61; sed -i '/^\[ 6\.1 has/,/\]$/d' "$tmp/s"/0001-*.patch
expect "series-hygiene.py: a backport without its note" 1 "6.1/1.*no bracketed backport note" hyg_fails "$tmp/s" 6.1
expect "series-hygiene.py passes the mainline series" 0 "^all [0-9]+ checks pass" hyg_fails patches/mainline
sp() { rm -rf "$tmp/s" && cp -r patches/mainline "$tmp/s"; }
sp; sed -i '/^Signed-off-by:/d' "$tmp/s"/0003-*.patch
expect "series-hygiene.py: a patch without Signed-off-by" 1 "patch mainline/3.*no Signed-off-by" hyg_fails "$tmp/s"
sp; sed -i '/^0004-/d' "$tmp/s/series"
expect "series-hygiene.py: a patch the series file does not list" 1 "does not list 0004-" hyg_fails "$tmp/s"
sp; sed -i '/^base-commit:/d' "$tmp/s/0000-cover-letter.patch"
expect "series-hygiene.py: a cover letter without base-commit" 1 "base-commit missing" hyg_fails "$tmp/s"
sp; sed -i 's/^Fixes: ac492b9c70ca/Fixes: ac492b9/' "$tmp/s"/0001-*.patch
expect "series-hygiene.py: a short Fixes: id" 1 "malformed 'Fixes: ac492b9 " hyg_fails "$tmp/s"
sp; sed -i 's/^Subject: \[PATCH 2\/\([0-9]*\)\] mm\/shmem:/Subject: [PATCH 2\/\1] mm\/hugetlb:/' "$tmp/s"/0002-*.patch
expect "series-hygiene.py: a prefix that names nothing touched" 1 "prefix 'mm/hugetlb' names nothing" hyg_fails "$tmp/s"

# A cached tarball whose checksum differs from the recorded one is refused.
pkg=$(sed -n 's/^package=//p' patches/6.1/base)
ver=$(sed -n 's/^version=//p' patches/6.1/base)
if apt-cache madison "$pkg" 2>/dev/null | grep -c " $ver " >/dev/null; then
	mkdir -p "$tmp/cache/debs" "$tmp/cache/tarballs"
	echo junk >"$tmp/cache/debs/${pkg}_${ver}_all.deb"
	echo junk >"$tmp/cache/tarballs/${pkg}_${ver}.tar.xz"
	expect "fetch-tree.sh refuses a checksum mismatch" 1 "error: checksum mismatch for $pkg" \
		env UFFD_CACHE="$tmp/cache" UFFD_BUILD="$tmp/build" scripts/fetch-tree.sh 6.1
else
	n=$((n + 1))
	skip=$((skip + 1))
	echo "ok $n fetch-tree.sh refuses a checksum mismatch # SKIP $pkg $ver not in the apt index"
fi

# The archive moved on: the newest of the package is used, with a loud
# warning naming both versions. A package the archive lacks is named.
mkdir -p "$tmp/pp/6.1"
sed -e 's/^version=.*/version=6.1.0-0/' patches/6.1/base >"$tmp/pp/6.1/base"
expect "fetch-tree.sh warns loudly when the archive moved on" 0 \
	"WARNING: linux-source-6.1 6.1.0-0 \(recorded in patches/6.1/base\)" \
	env UFFD_PATCHES="$tmp/pp" UFFD_BUILD="$tmp/build" scripts/fetch-tree.sh 6.1
# The recorded version is looked for beyond the suite the base names first.
mkdir -p "$tmp/pp/mainline"
sed -e 's/^extra_suite=.*/extra_suite=oldstable/' patches/mainline/base >"$tmp/pp/mainline/base"
expect "fetch-tree.sh finds the recorded version in another suite" 0 \
	"no longer in suite 'oldstable', where patches/mainline/base looks first; found in suite|WARNING: .* is in none of the suites searched" \
	env UFFD_PATCHES="$tmp/pp" UFFD_BUILD="$tmp/build" scripts/fetch-tree.sh mainline
# A series that does not apply to the newest release of its line is a
# TODO of the newest-base gate, not a failure: a context line no release has.
cp -r patches/mainline/. "$tmp/pp/mainline/"
p1=$tmp/pp/mainline/$(sed -e 's/#.*//' patches/mainline/series | awk 'NF { print $1; exit }')
awk '/^@@ / { h = 1 } h == 1 && /^ / { $0 = $0 "XXX-in-no-release"; h = 2 } 1' "$p1" >"$tmp/p1" && mv "$tmp/p1" "$p1"
expect "newest-base.sh reports a series off the newest release as TODO" 0 \
	"^not ok 1 - mainline: the series applies with git am to the newest release of its line # TODO .*does not apply|# SKIP .* is the recorded base" \
	env UFFD_PATCHES="$tmp/pp" UFFD_BUILD="$tmp/build" scripts/newest-base.sh mainline
sed -e 's/^package=.*/package=linux-source-0.0/' patches/6.1/base >"$tmp/pp/6.1/base"
expect "fetch-tree.sh names a package the archive lacks" 1 \
	"error: package 'linux-source-0.0' not found in the archive \(searched: own experimental " \
	env UFFD_PATCHES="$tmp/pp" UFFD_BUILD="$tmp/build" scripts/fetch-tree.sh 6.1

# A missing tool is named, with the way to get it.
mkdir -p "$tmp/bin"
for f in /usr/bin/*; do
	case "$f" in */qemu-system-x86_64) ;; *) ln -s "$f" "$tmp/bin/" ;; esac
done
expect "run-vm.sh names a missing tool" 1 "error: missing tool 'qemu-system-x86_64' \(run 'make deps'\)" \
	env PATH="$tmp/bin" scripts/run-vm.sh 6.1 patched

# The bench on a real guest: a test that outlives its limit is killed and
# the run goes on; a guest that hangs is stopped by the host's limit; a
# kernel with no /init is reported as never printing TAP.
kernel=
for k in 6.1-unpatched mainline-unpatched; do
	if [ -f "build/obj/$k/arch/x86/boot/bzImage" ]; then
		kernel=$k
		break
	fi
done
vmcase() {
	if [ -z "$kernel" ]; then
		n=$((n + 1)) skip=$((skip + 1))
		echo "ok $n $1 # SKIP no kernel built yet (make kernel)"
		return
	fi
	expect "$@"
}
# mkguest DIR [nosh]: pack DIR with busybox (and /bin/sh unless nosh) as
# the initramfs of $kernel in $tmp/vmb.
mkguest() {
	mkdir -p "$1/bin" "$tmp/vmb/initramfs" "$tmp/vmb/obj/$kernel/arch/x86/boot"
	cp "$(command -v busybox)" "$1/bin/busybox"
	[ "${2:-}" = nosh ] || ln -sf busybox "$1/bin/sh"
	ln -sf "$TOP/build/obj/$kernel/arch/x86/boot/bzImage" "$tmp/vmb/obj/$kernel/arch/x86/boot/bzImage"
	(cd "$1" && find . | cpio -o -H newc --owner=0:0 --quiet) >"$tmp/vmb/initramfs/$kernel.cpio"
}
vmrun() {
	env UFFD_BUILD="$tmp/vmb" UFFD_SELFTESTS="$TOP/tests/vm" "$@" scripts/run-vm.sh ${kernel/-/ }
}
if [ -n "$kernel" ]; then
	mkdir -p "$tmp/g1/tests"
	install -m 0755 scripts/guest-init.sh "$tmp/g1/init"
	cp tests/vm/tests.list tests/vm/sleeper tests/vm/talker tests/vm/leftover tests/vm/quick "$tmp/g1/tests/"
	mkguest "$tmp/g1"
fi
vmcase "guest kills a test at its limit and goes on ($kernel)" 0 \
	"sleeper:case1 +fail \(expect fail\) ok +- planned but never reported \(TIMEOUT 2 seconds without output\)" vmrun
vmcase "guest lets a test that keeps printing outlive its limit ($kernel)" 0 \
	"talker:talker_case +pass \(expect pass\) ok" \
	env UFFD_BUILD="$tmp/vmb" UFFD_SELFTESTS="$TOP/tests/vm" python3 scripts/parse-console.py \
	--kernel "$kernel" --expectations tests/vm/expectations --tests tests/vm/tests.list \
	"$tmp/vmb/runs/$kernel/latest/console.log"
vmcase "guest does not wait forever on a leftover process ($kernel)" 0 \
	"leftover exited but a leftover process holds its output" cat "$tmp/vmb/runs/$kernel/latest/console.log"
vmcase "guest keeps a test's last line when a leftover holds its output ($kernel)" 0 \
	"^# ok 1 leftover_case" cat "$tmp/vmb/runs/$kernel/latest/console.log"
vmcase "guest goes on after both ($kernel)" 0 "^ok 4 selftests: uffd-robust: quick" \
	cat "$tmp/vmb/runs/$kernel/latest/console.log"
if [ -n "$kernel" ]; then
	rm -rf "$tmp/g2" && mkdir -p "$tmp/g2"
	printf '#!/bin/sh\necho "TAP version 13"\necho 1..1\necho "# selftests: uffd-robust: quick"\nexec /bin/busybox sleep 100000\n' >"$tmp/g2/init"
	chmod +x "$tmp/g2/init"
	mkguest "$tmp/g2"
fi
vmcase "host stops a guest that went silent ($kernel)" 1 \
	"error: $kernel: the guest hung during test quick \(killed after [0-9]+ s: guest silent for 1[5-9] s\)" \
	vmrun UFFD_VM_LIMIT=15
if [ -n "$kernel" ]; then
	rm -rf "$tmp/g3" && mkdir -p "$tmp/g3"
	mkguest "$tmp/g3" nosh
fi
# The panic must end the run at once (panic=-1, -no-reboot), not the limit.
vmcase "a kernel with no /init never prints TAP ($kernel)" 1 \
	"error: $kernel: the kernel did not boot or never printed TAP;" vmrun UFFD_VM_LIMIT=60
vmcase "a kernel with no /init: its panic is reported ($kernel)" 0 \
	"Kernel panic - not syncing: No working init found" cat "$tmp/vmb/runs/$kernel/latest/console.log"
# runs_kept: the three runs above each in a directory of its own, the
# first one's console still there.
runs_kept() {
	local runs
	runs=$(find "$tmp/vmb/runs/$kernel" -mindepth 1 -maxdepth 1 -type d | sort)
	echo "$(echo "$runs" | grep -c .) run directories"
	grep -h "^ok .* selftests: uffd-robust: quick" "$(echo "$runs" | head -n 1)/console.log"
}
vmcase "each run keeps its own console ($kernel)" 0 \
	"^3 run directories\$" runs_kept

echo "1..$n"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
