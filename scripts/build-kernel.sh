#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# build-kernel.sh [--configure-only] TREE VARIANT
#
# Configure (tinyconfig + config/*.config fragments, merged with the tree's
# merge_config.sh) and build the kernel of TREE (6.1|mainline) in VARIANT
# (unpatched|patched|mutant) out of tree in build/obj/TREE-VARIANT, together with
# the uapi headers and what out-of-tree modules need. Fails naming every
# requested option that Kconfig dropped. Prints the build directory.
# --configure-only stops after the configuration (for bisect-build.sh).
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

configure_only=0
if [ "${1:-}" = --configure-only ]; then
	configure_only=1
	shift
fi
tree_variant_args "[--configure-only] TREE VARIANT" "$@"
need_tool make gcc flex bison bc perl

src=$("$TOP/scripts/prepare-tree.sh" --variant "$variant" "$tree")
obj=$BUILD/obj/$kname
mkdir -p "$BUILD/obj"

# An empty series makes the patched kernel the unpatched one: build it once.
if [ "$variant" = patched ] &&
	[ "$(git -C "$src" rev-parse HEAD)" = "$(git -C "$src" rev-parse base)" ]; then
	log "$tree: series is empty, the patched kernel is the unpatched kernel"
	uobj=$("$TOP/scripts/build-kernel.sh" "$tree" unpatched)
	[ -L "$obj" ] || rm -rf "$obj"
	ln -sfn "$(basename "$uobj")" "$obj"
	echo "$obj"
	exit 0
fi
[ -L "$obj" ] && rm -f "$obj"
mkdir -p "$obj"

fragments=("$TOP/config/base.config")
# The perf flavour leaves the debug checks out (see config/flavour-perf.config).
[ "$flavour" = perf ] || fragments+=("$TOP/config/debug.config")
[ -f "$TOP/config/tree-$tree.config" ] && fragments+=("$TOP/config/tree-$tree.config")
# A combined flavour (kvm-debug) takes each part's fragment, in order.
for part in ${flavour//-/ }; do
	fragments+=("$TOP/config/flavour-$part.config")
done

kmake_init "$src" "$obj"

# Reconfigure only when the fragments or the source changed, so that an
# unchanged tree rebuilds incrementally.
cstamp=$( (cat "${fragments[@]}"; git -C "$src" rev-parse HEAD) | sha256sum | cut -d' ' -f1)
if [ ! -f "$obj/.config" ] || [ "$(cat "$obj/.uffd-config" 2>/dev/null)" != "$cstamp" ]; then
	timer_start
	rm -f "$obj/.uffd-config"
	"${kmake[@]}" -s tinyconfig >"$obj/config.log" 2>&1 ||
		die "'make tinyconfig' failed for $tree (see $obj/config.log)"
	(cd "$obj" && "$src/scripts/kconfig/merge_config.sh" -m .config "${fragments[@]}") \
		>>"$obj/config.log" 2>&1 || die "merge_config.sh failed for $tree (see $obj/config.log)"
	"${kmake[@]}" -s olddefconfig >>"$obj/config.log" 2>&1 ||
		die "'make olddefconfig' failed for $tree (see $obj/config.log)"

	# Every option a fragment asks for must be in the final .config as asked.
	dropped=()
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*)
			opt=${line%%=*} want=${line#*=}
			have=$(sed -n "s/^$opt=//p" "$obj/.config")
			[ "$have" = "$want" ] || dropped+=("$opt=$want (got ${have:-unset})")
			;;
		"# CONFIG_"*" is not set")
			opt=${line#\# }
			opt=${opt%% *}
			grep -q "^$opt=" "$obj/.config" && dropped+=("$opt unset (got $(sed -n "s/^$opt=//p" "$obj/.config"))")
			;;
		esac
	done < <(cat "${fragments[@]}")
	if [ ${#dropped[@]} -gt 0 ]; then
		for d in "${dropped[@]}"; do echo "$me: dropped: $d" >&2; done
		die "Kconfig dropped ${#dropped[@]} requested option(s) for $tree: ${dropped[*]%% *}"
	fi
	echo "$cstamp" >"$obj/.uffd-config"
	timer_end "configure-$kname"
fi

if [ "$configure_only" = 1 ]; then
	echo "$obj"
	exit 0
fi

timer_start
log "building $kname in $obj (log: $obj/build.log)"
if ! kbuild_progress "$kname" "$obj/build.log" "${kmake[@]}" bzImage modules modules_prepare headers; then
	grep -E 'error|Error' "$obj/build.log" | head -n 5 >&2
	die "kernel build failed for $kname (see $obj/build.log)"
fi
timer_end "build-$kname"
echo "$obj"
