#!/usr/bin/env bash
# Install, build, and run every test (unit, end-to-end with real processes, the fuzz smoke run). Under CI=true a
# test that lacks a privilege or a kernel feature fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
ctest --test-dir build --output-on-failure --timeout 600
