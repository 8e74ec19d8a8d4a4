# SPDX-License-Identifier: GPL-2.0
# uffd-robust: userfaultfd robustness series for 6.1.y and mainline, its
# selftests and the bench that boots them. 'make help' lists the targets.

TREE ?= mainline
VARIANT ?= patched
# Comma-separated test names to run instead of all of selftests/tests.list.
ONLY ?=
# Replay a run: every test gets -s SEED (a failure's summary prints it).
SEED ?=
# DEBUG=1: make kvm-test builds the kvm flavour with the debug sanitisers.
DEBUG ?=

S := scripts

help:
	@echo "Targets (TREE=$(TREE): 6.1|mainline, VARIANT=$(VARIANT): unpatched|patched|mutant):"
	@echo "  deps        install every Debian package the bench uses (apt-get)"
	@echo "  fetch       download TREE's Debian source package into ~/.cache/uffd-robust"
	@echo "  prepare     unpack TREE into build/src/TREE-VARIANT, apply patches/TREE/series"
	@echo "  kernel      configure and build TREE-VARIANT in build/obj/TREE-VARIANT"
	@echo "  initramfs   build the selftests and the initramfs for TREE-VARIANT"
	@echo "  vm-test     boot TREE-VARIANT in QEMU, run the selftests (ONLY=a,b SEED=n), judge the console"
	@echo "  host-test   test the bench itself (console parser) on recorded logs"
	@echo "  gates       the series' quality gates for TREE: bisect, checkpatch, hygiene, sparse, W=1, coccicheck"
	@echo "  check       everything CI checks: every tree unpatched and patched, the gates, mainline debug, host-test"
	@echo "  check-debug both trees' patched kernels in the debug flavour (KASAN, KMEMLEAK, SLUB poisoning)"
	@echo "  upstream-test  each tree's own uffd/khugepaged/hugetlb selftests, unpatched vs patched"
	@echo "  kvm-test    TREE-VARIANT with KVM, booted with SVM: seed 000 through KVM's async page fault worker (DEBUG=1: with KASAN)"
	@echo "  bench       time TREE unpatched vs patched (bench/bench.list), write Documentation/perf/TREE.md"
	@echo "  clean       remove build/ (the download cache stays)"

deps:
	$(S)/install-deps.sh

fetch:
	$(S)/fetch-tree.sh $(TREE)

prepare:
	$(S)/prepare-tree.sh --variant $(VARIANT) $(TREE)

kernel:
	$(S)/build-kernel.sh $(TREE) $(VARIANT)

initramfs: kernel
	$(S)/build-initramfs.sh $(TREE) $(VARIANT)

RUN_VM_ARGS = $(strip $(if $(ONLY),--only $(ONLY)) $(if $(SEED),--seed $(SEED)) $(TREE) $(VARIANT))

# Arguments first: a typo in ONLY is an error before anything is built
# (in the recipe, not as a prerequisite, which make -j would build at once).
vm-test-args:
	@$(S)/run-vm.sh --check $(RUN_VM_ARGS)

vm-test:
	@$(S)/run-vm.sh --check $(RUN_VM_ARGS)
	$(MAKE) --no-print-directory initramfs
	$(S)/run-vm.sh $(RUN_VM_ARGS)

host-test:
	tests/run.sh

gates:
	$(S)/build-kernel.sh $(TREE) unpatched >/dev/null
	$(S)/bisect-build.sh $(TREE)
	$(S)/lint-series.sh $(TREE)
	$(S)/static-check.sh $(TREE)
	$(S)/newest-base.sh $(TREE)

check:
	$(S)/check.sh

check-debug:
	$(S)/check.sh --debug-only

upstream-test:
	@rc=0; for t in 6.1 mainline; do $(S)/run-upstream-tests.sh $$t || rc=1; done; exit $$rc

bench:
	$(S)/run-bench.sh $(TREE)

kvm-test:
	$(S)/run-kvm-test.sh $(if $(filter 1,$(DEBUG)),--debug) $(RUN_VM_ARGS)

clean:
	rm -rf build

.PHONY: help deps fetch prepare kernel initramfs vm-test-args vm-test host-test gates check check-debug \
	upstream-test bench kvm-test clean
