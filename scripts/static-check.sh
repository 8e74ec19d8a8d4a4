#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# static-check.sh TREE
#
# The static analysis a maintainer runs on a series, as TAP, run by 'make
# check' per tree after both kernels are built:
# - sparse (C=2, the sparse build-sparse.sh provides), gcc W=1 and
#   'coccicheck MODE=report' on every C file the series touches, in the
#   unpatched and the patched build: compare-warnings.py fails on any
#   diagnostic the patched tree adds (what the base already gives is known);
# - the debug module built against the patched kernel with W=1 and sparse:
#   no diagnostic at all; and it needs no symbol that only the series
#   exports (nm -u against the unpatched kernel's Module.symvers).
# Reads build/obj/TREE-{unpatched,patched}; W=1 builds '.s' targets, so the
# kernels' objects are not touched. Logs in build/static/TREE/.
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: $me TREE"
tree=$1
check_tree "$tree"
need_tool make gcc spatch python3
usrc=$BUILD/src/$tree-unpatched psrc=$BUILD/src/$tree-patched
uobj=$BUILD/obj/$tree-unpatched pobj=$BUILD/obj/$tree-patched
for d in "$uobj" "$pobj"; do
	[ -f "$d/vmlinux" ] || die "$d has no built kernel (run build-kernel.sh first)"
done
sparse=$("$TOP/scripts/build-sparse.sh")
out=$BUILD/static/$tree
rm -rf "$out"
mkdir -p "$out"

# The C files of the kernel the series changes and the configuration builds.
files=()
while IFS= read -r f; do
	case "$f" in tools/*|Documentation/*|samples/*|scripts/*) continue ;; esac
	[ -f "$pobj/${f%.c}.o" ] && files+=("$f")
done < <(git -C "$psrc" diff --name-only base HEAD -- '*.c')
[ ${#files[@]} -gt 0 ] || die "$tree: the series touches no C file that the bench config builds"
objs=("${files[@]/%.c/.o}")
asms=("${files[@]/%.c/.s}")
echo "# $tree: ${files[*]}"

# compare KIND: judge $out/KIND-{unpatched,patched}.log.
compare() {
	local kind=$1 what=$2 res
	# gcc names the sources relative to the build directory, sparse absolute.
	if res=$(python3 "$TOP/scripts/compare-warnings.py" --strip "$usrc/" --strip "$psrc/" \
		--strip "../../src/$tree-unpatched/" --strip "../../src/$tree-patched/" \
		--strip "$out/cocci/unpatched/" --strip "$out/cocci/patched/" \
		"$out/$kind-unpatched.log" "$out/$kind-patched.log"); then
		tap ok "$what $tree: nothing new (${res##*$'\n'})"
	else
		mapfile -t lines <<<"$res"
		tap fail "$what $tree: the series adds diagnostics" "${lines[@]}"
	fi
}

timer_start
broken=()
for v in unpatched patched; do
	kmake_init "$BUILD/src/$tree-$v" "$BUILD/obj/$tree-$v"
	"${kmake[@]}" -s C=2 CHECK="$sparse" "${objs[@]}" >"$out/sparse-$v.log" 2>&1 ||
		broken+=(sparse)
	"${kmake[@]}" -s W=1 "${asms[@]}" >"$out/w1-$v.log" 2>&1 ||
		broken+=(w1)
done
for kind in sparse w1; do
	what="sparse (C=2) of the touched files"
	[ "$kind" = sparse ] || what="gcc W=1 of the touched files"
	if [[ " ${broken[*]} " == *" $kind "* ]]; then
		tap fail "$what $tree: make failed" "$(grep -m 3 -E 'error|Error' "$out/$kind-"*.log)"
	else
		compare "$kind" "$what"
	fi
done
timer_end "static-sparse-w1-$tree"

# coccicheck: one spatch run per semantic patch over the touched files of
# both trees (spatch's start-up, not the files, dominates). The result
# depends only on the files, the semantic patches and spatch: keep it.
timer_start
key=$( (spatch --version | head -n 1; git -C "$psrc" rev-parse HEAD:scripts/coccinelle;
	for v in unpatched patched; do
		for f in "${files[@]}"; do git -C "$BUILD/src/$tree-$v" hash-object "$f"; done
	done) | sha256sum | cut -c1-16)
cached=$CACHE/coccicheck/$tree-$key
if [ -f "$cached/cocci-patched.log" ]; then
	cp "$cached"/cocci-*.log "$out/"
	how="cached: $(basename "$cached")"
else
	for v in unpatched patched; do
		for f in "${files[@]}"; do
			mkdir -p "$out/cocci/$v/$(dirname "$f")"
			cp "$BUILD/src/$tree-$v/$f" "$out/cocci/$v/$f"
		done
	done
	# The include flags of the kernel build, from one touched object's command.
	inc=$(head -n 1 "$pobj/$(dirname "${files[0]}")/.$(basename "${objs[0]}").cmd" |
		tr ' ' '\n' | awk '/^-I/ || /^-isystem/ { print } /^-include$/ { getline f; print "-include " f }' |
		tr '\n' ' ')
	# The directory to check is srcroot on mainline, KBUILD_EXTMOD on 6.1.
	(cd "$pobj" && MODE=report DEBUG_FILE=/dev/null J="$(nproc)" srctree="$psrc" \
		srcroot="$out/cocci" KBUILD_EXTMOD="$out/cocci" LINUXINCLUDE="$inc" \
		"$psrc/scripts/coccicheck") \
		>"$out/cocci-all.log" 2>&1 || echo "coccicheck failed" >>"$out/cocci-all.log"
	for v in unpatched patched; do
		# Paths relative to the tree, so that the kept result fits any clone.
		grep -F "$out/cocci/$v/" "$out/cocci-all.log" |
			sed "s|$out/cocci/$v/||" >"$out/cocci-$v.log" || true
	done
	if ! grep -q "coccicheck failed" "$out/cocci-all.log"; then
		mkdir -p "$cached"
		cp "$out"/cocci-unpatched.log "$out"/cocci-patched.log "$cached/"
	fi
	how="$(grep -c -- '--cocci-file' "$out/cocci-all.log") semantic patches"
fi
if grep -q "coccicheck failed" "$out/cocci-all.log" 2>/dev/null; then
	tap fail "coccicheck $tree: did not run" "$(grep -v '^/usr/bin/spatch' "$out/cocci-all.log" | tail -n 5)"
else
	compare cocci "coccicheck MODE=report ($how) of the touched files"
fi
timer_end "static-coccicheck-$tree"

# The module: W=1 and sparse, against the patched kernel, in its own copy.
timer_start
mod=$BUILD/module/$tree-static
rm -rf "$mod"
mkdir -p "$mod"
cp "$TOP"/module/Kbuild "$TOP"/module/*.[ch] "$mod/"
kmake_init "$psrc" "$pobj"
if "${kmake[@]}" -s M="$mod" W=1 C=2 CHECK="$sparse" modules >"$mod/build.log" 2>&1; then
	if grep -E 'warning:|error:' "$mod/build.log" >"$mod/diag.log"; then
		mapfile -t lines <"$mod/diag.log"
		tap fail "module $tree: W=1 and sparse clean" "${lines[@]}"
	else
		tap ok "module $tree: W=1 and sparse clean"
	fi
else
	tap fail "module $tree: does not build with W=1 C=2" "$(tail -n 5 "$mod/build.log")"
fi

# The series exports nothing for the module: every symbol the module takes
# from the kernel is exported by the unpatched kernel already.
if [ -f "$mod/uffd_debug.ko" ] && [ -f "$uobj/Module.symvers" ]; then
	mapfile -t extra < <(comm -23 <(nm -u "$mod/uffd_debug.ko" | awk '{print $2}' | sort -u) \
		<(awk '{print $2}' "$uobj/Module.symvers" | sort -u))
	if [ ${#extra[@]} -eq 0 ]; then
		tap ok "module $tree: needs no symbol the unpatched kernel does not export"
	else
		tap fail "module $tree: needs symbols only the series exports" "${extra[@]}"
	fi
else
	tap fail "module $tree: no uffd_debug.ko or no $uobj/Module.symvers to compare"
fi
timer_end "static-module-$tree"

tap_plan
