#!/usr/bin/env bash
# The main job on a built-in demo: install, build, start a workload (64 MiB of memory, a file at an offset, a pipe
# with bytes in it, two threads, a child), dump it with -R, show the image, then let the workload verify itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh >/dev/null
work=$(mktemp -d /var/tmp/bpfckpt-demo.XXXXXX)
out=$work/workload.out
build/workloads/dump_state --mem-mib 64 --dir "$work" >"$out" &
wl=$!
trap 'kill $wl 2>/dev/null; wait $wl 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q READY "$out" && break; sleep 0.1; done
build/bpfckpt check
build/bpfckpt dump -t "$wl" -D "$work/image" -R --stats
build/bpfckpt show "$work/image"
kill -USR1 "$wl"
wait "$wl" && echo "demo workload verified its state after the dump: $(tail -1 "$out")"
