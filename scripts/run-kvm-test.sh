#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# run-kvm-test.sh [--debug] [--only TEST[,TEST...]] [--seed N] TREE VARIANT
#
# make kvm-test: build TREE-VARIANT in the kvm flavour (config/
# flavour-kvm.config: KVM and KVM_AMD built in), boot it under QEMU's TCG
# with -cpu max, which offers SVM, and run the tests of selftests/kvm/
# tests.list in it (uffd-kvm-apf: seed 000 through KVM's async page fault
# worker, with a VMM of the test's own), judged against
# selftests/kvm/expectations. --debug adds the debug flavour's sanitisers
# (kvm-debug: KASAN, SLUB poisoning; time limits x4), to tell what
# corrupted memory when a kvm kernel crashes. --only and --seed go to
# run-vm.sh.
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

flavour=kvm
vm_args=()
while [ $# -gt 0 ]; do
	case "$1" in
	--debug) flavour=kvm-debug; shift ;;
	--only|--seed) vm_args+=("$1" "${2:-}"); shift 2 || die "$1 needs a value" ;;
	*) break ;;
	esac
done
export UFFD_FLAVOUR=$flavour UFFD_SELFTESTS=$TOP/selftests/kvm
tree_variant_args "[--debug] [--only TEST[,TEST...]] [--seed N] TREE VARIANT" "$@"
"$TOP/scripts/run-vm.sh" --check "${vm_args[@]}" "$tree" "$variant"
"$TOP/scripts/build-kernel.sh" "$tree" "$variant" >/dev/null
"$TOP/scripts/build-initramfs.sh" "$tree" "$variant" >/dev/null
exec "$TOP/scripts/run-vm.sh" "${vm_args[@]}" "$tree" "$variant"
