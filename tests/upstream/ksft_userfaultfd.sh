#!/bin/sh -e

./run_vmtests.sh -t userfaultfd
