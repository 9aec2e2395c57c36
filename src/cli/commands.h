// Each subcommand lives in its own file and registers itself here: add_<name>(root) declares its options and
// returns the function main() calls when that subcommand was chosen.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

#include "common/result.h"

namespace bpfckpt::cli {

using Run = std::function<Status()>;

Run add_check(CLI::App& root);
Run add_dump(CLI::App& root);
Run add_show(CLI::App& root);
Run add_core(CLI::App& root);
Run add_snap(CLI::App& root);
Run add_untrack(CLI::App& root);
Run add_watch(CLI::App& root);
Run add_thaw(CLI::App& root);
// exit_status: without -d, restore exits with the restored root's status.
Run add_restore(CLI::App& root, int* exit_status);
// exit_status: exec exits with the command's status, or one of exec/supervise.h's.
Run add_exec(CLI::App& root, int* exit_status);

// "Examples:" blocks for --help, kept beside each command's options.
void set_examples(CLI::App& cmd, const char* text);

}  // namespace bpfckpt::cli
