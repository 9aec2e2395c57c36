#!/usr/bin/env bash
# Installs what bpfckpt needs to build and test, from Debian 12's packages only.
set -euo pipefail
packages=(
	build-essential cmake ninja-build pkg-config
	clang-19 llvm-19 libclang-rt-19-dev  # BPF programs; libFuzzer for the image fuzz target
	libbpf-dev bpftool libelf-dev zlib1g-dev
	libfmt-dev nlohmann-json3-dev libcli11-dev libxxhash-dev
	libgtest-dev python3 python3-jsonschema
	gdb  # the core tests open bpfckpt's cores in gdb
)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
