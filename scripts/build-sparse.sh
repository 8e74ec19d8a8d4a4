#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# build-sparse.sh
#
# Print the path of a sparse that understands the kernel trees of the bench,
# building it first when needed. Debian 12's sparse (0.6.4) lacks
# __typeof_unqual__, which mainline's scripts/checker-valid.sh requires, and
# the newer binary package needs a newer C library; so this takes the source
# package from Debian's unstable suite (through a private apt list of the
# machine's own archive), builds only the 'sparse' program and keeps it in the
# cache. Installs nothing system-wide.
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

SUITE=sid
dest=$CACHE/tools/sparse

# works SPARSE: does it parse what mainline's checker-valid.sh feeds it?
works() {
	local t rc=0
	t=$(mktemp --suffix=.c)
	printf 'static inline int u(const int *q)\n{\n\t__typeof_unqual__(*q) v = *q;\n\treturn v;\n}\n' >"$t"
	if "$1" "$t" 2>&1 | grep -q error; then rc=1; fi
	rm -f "$t"
	return $rc
}

if [ -x "$dest/sparse" ] && works "$dest/sparse"; then
	echo "$dest/sparse"
	exit 0
fi
need_tool apt-get dpkg-source make gcc
apt_opts=()
private_apt "$SUITE" deb-src
mkdir -p "$CACHE/tools"
work=$(mktemp -d "$CACHE/tools/.sparse.XXXXXX")
trap 'rm -rf "$work"' EXIT
timer_start
(cd "$work" && apt-get -q "${apt_opts[@]}" -o APT::Sandbox::User=root \
	source --download-only sparse) >"$work/fetch.log" 2>&1 ||
	die "cannot download the sparse source package from '$SUITE' (see $work/fetch.log)"
dsc=$(find "$work" -maxdepth 1 -name 'sparse_*.dsc' | head -n 1)
[ -n "$dsc" ] || die "no sparse .dsc downloaded (see $work/fetch.log)"
dpkg-source -x --skip-patches "$dsc" "$work/src" >>"$work/fetch.log" 2>&1 ||
	die "cannot unpack $dsc"
make -C "$work/src" -j"$(nproc)" sparse >"$work/build.log" 2>&1 ||
	die "sparse did not build (see $work/build.log)"
works "$work/src/sparse" || die "the sparse of $(basename "$dsc") does not parse __typeof_unqual__"
mkdir -p "$dest"
cp "$work/src/sparse" "$dest/sparse.tmp"
mv -f "$dest/sparse.tmp" "$dest/sparse"
basename "$dsc" .dsc >"$dest/VERSION"
timer_end build-sparse
log "built sparse from $(cat "$dest/VERSION") ($SUITE)"
echo "$dest/sparse"
