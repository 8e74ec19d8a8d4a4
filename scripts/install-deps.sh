#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# install-deps.sh: install, through apt-get, every Debian package the bench
# uses, and (build-sparse.sh) a sparse new enough for mainline into the
# cache. Does nothing (and needs no network) when all are there.
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

pkgs=(
	build-essential gcc make flex bison bc perl python3 kmod cpio xz-utils
	libelf-dev libssl-dev dwarves rsync git file ccache
	qemu-system-x86 busybox-static bash-static
	sparse coccinelle ocaml-nox dpkg-dev python3-ply python3-git
	libcap-dev libnuma-dev
	gnuplot-nox
)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	log "all ${#pkgs[@]} packages installed"
	"$TOP/scripts/build-sparse.sh" >/dev/null
	exit 0
fi
[ "$(id -u)" = 0 ] || die "packages missing (${missing[*]}) and not root: install them with apt-get"
log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null || die "apt-get update failed"
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
	die "apt-get install failed for: ${missing[*]}"
# Debian 12's sparse is too old for mainline: build a newer one into the cache.
"$TOP/scripts/build-sparse.sh" >/dev/null
