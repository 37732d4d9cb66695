#!/usr/bin/env bash
# Prints one hash over every C source and header the objects are built from (vmlinux.h included).
set -euo pipefail
cd "$(dirname "$0")"
find src/bpf -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1
