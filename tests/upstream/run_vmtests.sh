#!/bin/bash
# A cut of mainline's tools/testing/selftests/mm/run_vmtests.sh: what
# vmtests_programs (scripts/lib.sh) reads of it.
usage() {
	cat <<USAGE
example: ./run_vmtests.sh -t "hmm mmap ksm"
USAGE
}
CATEGORY="hugetlb" run_test ./hugetlb-mmap
CATEGORY="userfaultfd" run_test ./uffd-unit-tests
uffd_stress_bin=./uffd-stress
CATEGORY="userfaultfd" run_test ${uffd_stress_bin} anon 20 16
CATEGORY="userfaultfd" run_test ${uffd_stress_bin} hugetlb 128 32
CATEGORY="userfaultfd" run_test ./uffd-wp-mremap
if [ -x ./memfd_secret ]; then
	CATEGORY="memfd_secret" run_test ./memfd_secret
fi
CATEGORY="mlock" run_test sudo -u nobody sh -c ./on-fault-limit
CATEGORY="hugevm" run_test bash ./va_high_addr_switch.sh
CATEGORY="thp" run_test ./khugepaged all:shmem
