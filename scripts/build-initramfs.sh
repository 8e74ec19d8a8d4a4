#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# build-initramfs.sh TREE VARIANT
#
# Build the selftests statically against TREE's prepared sources and uapi
# headers, and pack them with busybox-static and the guest /init into
# build/initramfs/TREE-VARIANT.cpio.
# Prints the path of the archive.
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

tree_variant_args "TREE VARIANT" "$@"
need_tool cpio gcc make
busybox=$(command -v busybox || true)
[ -n "$busybox" ] || die "missing tool 'busybox' (run 'make deps')"
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' ||
	ldd "$busybox" 2>&1 | grep -q 'not a dynamic executable' ||
	die "$busybox is not statically linked (install busybox-static)"

obj=$BUILD/obj/$kname
[ -f "$obj/usr/include/linux/userfaultfd.h" ] ||
	die "no uapi headers in $obj (run scripts/build-kernel.sh $tree $variant)"
src=$BUILD/src/$tree-$variant
[ -d "$src" ] || die "no prepared tree at $src"

# The tests see the kernel's own headers and kselftest.h.
# UFFD_SELFTESTS and UFFD_PREBUILT let scripts/run-upstream-tests.sh put
# another list of prebuilt tests in an initramfs of its own (UFFD_INITRD).
st=${UFFD_SELFTESTS:-$TOP/selftests}
tests=${UFFD_PREBUILT:-$BUILD/selftests/$kname}
if [ -z "${UFFD_PREBUILT:-}" ]; then
	make -s -C "$TOP/selftests" KSRC="$src" KHDR="$obj/usr/include" OUT="$tests" ||
		die "selftests do not build against $tree-$variant"
fi

# The debug module, built out of tree in a copy of module/ per kernel so
# that the objects of one kernel never meet another's.
mod=$BUILD/module/$kname
rm -rf "$mod"
mkdir -p "$mod"
cp "$TOP"/module/Kbuild "$TOP"/module/*.[ch] "$mod/"
make -s -C "$obj" M="$mod" modules >"$mod/build.log" 2>&1 ||
	die "uffd_debug.ko does not build against $kname (see $mod/build.log)"

stage=$(mktemp -d "$BUILD/initramfs-stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,tests,proc,sys,dev,tmp,lib/modules}
cp "$mod/uffd_debug.ko" "$stage/lib/modules/"
cp "$busybox" "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"
install -m 0755 "$TOP/scripts/guest-init.sh" "$stage/init"
cp "$st/tests.list" "$stage/tests/"
if [ -n "${UFFD_PREBUILT:-}" ]; then
	cp "$tests"/* "$stage/tests/"	# the listed tests and what they run
else
	while read -r name _; do
		case "$name" in ''|'#'*) continue ;; esac
		cp "$tests/$name" "$stage/tests/"
	done <"$st/tests.list"
fi

mkdir -p "$BUILD/initramfs"
out=${UFFD_INITRD:-$BUILD/initramfs/$kname.cpio}
pack_cpio "$stage" . | write_atomic "$out"
echo "$out"
