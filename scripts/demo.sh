#!/usr/bin/env bash
# The main job on a built-in demo: install, build, start a workload (64 MiB of memory, a file at an offset, a pipe
# with bytes in it, two threads, a child), dump it (which ends it), show the image, restore it, and let the restored
# workload verify its own state.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh >/dev/null
work=$(mktemp -d /var/tmp/bpfckpt-demo.XXXXXX)
out=$work/workload.out
build/workloads/dump_state --mem-mib 64 --dir "$work" </dev/null >"$out" 2>&1 &
wl=$!
trap 'kill -9 $wl 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q READY "$out" && break; sleep 0.1; done
build/bpfckpt check
build/bpfckpt dump -t "$wl" -D "$work/image" --stats
wait "$wl" 2>/dev/null || true  # the dump killed it; reaping frees its PID for the restore
build/bpfckpt show "$work/image"
build/bpfckpt restore -D "$work/image" -d --stats
kill -USR1 "$wl"  # the restored workload has the same PID
for _ in $(seq 100); do grep -qE '^(PASS|FAIL)' "$out" && break; sleep 0.1; done
echo "restored demo workload says: $(grep -E '^(PASS|FAIL)' "$out")"
grep -q '^PASS' "$out"
