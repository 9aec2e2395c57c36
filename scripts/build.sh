#!/usr/bin/env bash
# Configures and builds into build/ (RelWithDebInfo). Uses clang-19 for C/C++ when present, so the libFuzzer
# target is built too; set CXX=g++ to build with gcc (the fuzz target is then left out).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CC:=clang-19}" "${CXX:=clang++-19}"
command -v "$CXX" >/dev/null || { CC=gcc; CXX=g++; }
CC=$CC CXX=$CXX cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build
