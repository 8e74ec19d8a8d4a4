#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# install-deps.sh: install, through apt-get, every Debian package the bench
# uses. Does nothing (and needs no network) when all are installed.
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

pkgs=(
	build-essential gcc make flex bison bc perl python3 kmod cpio xz-utils
	libelf-dev libssl-dev dwarves rsync git file ccache
	qemu-system-x86 busybox-static
	sparse coccinelle python3-ply python3-git
	libcap-dev libnuma-dev
)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	log "all ${#pkgs[@]} packages installed"
	exit 0
fi
[ "$(id -u)" = 0 ] || die "packages missing (${missing[*]}) and not root: install them with apt-get"
log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null || die "apt-get update failed"
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
	die "apt-get install failed for: ${missing[*]}"
