// bpfckpt check: can this machine dump and restore? Runs every probe (src/check/probes.h) and prints one line per
// requirement, or one JSON object with --json; the exit code says whether all requirements hold.
#include <cstdio>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "check/probes.h"
#include "cli/commands.h"

namespace bpfckpt::cli {

namespace {

void print_text(const std::vector<check::ProbeResult>& results)
{
	for (const auto& r : results) {
		const char* mark = r.ok ? "ok  " : r.required ? "FAIL" : "warn";
		fmt::print("{}  {}: {}\n", mark, r.name, r.detail);
	}
}

void print_json(const std::vector<check::ProbeResult>& results, bool all_ok)
{
	// Ordered, so that each check reads name first, as the text lines do.
	nlohmann::ordered_json checks = nlohmann::ordered_json::array();
	for (const auto& r : results)
		checks.push_back({{"name", r.name}, {"ok", r.ok}, {"required", r.required}, {"detail", r.detail}});
	nlohmann::ordered_json out{{"ok", all_ok}, {"checks", std::move(checks)}};
	fmt::print("{}\n", out.dump(2));
}

}  // namespace

Run add_check(CLI::App& root)
{
	CLI::App* cmd = root.add_subcommand(
	    "check", "Test whether this machine can dump and restore: BTF, the BPF iterators, ptrace, pidfd_getfd, "
		     "process_vm_readv, PAGEMAP_SCAN, userfaultfd WP_ASYNC, clone3 set_tid, the cgroup v2 freezer and "
		     "the capabilities bpfckpt needs. Each feature is exercised, not just looked up.");
	set_examples(*cmd, "  bpfckpt check            one line per requirement; exit 0 when all hold\n"
			   "  bpfckpt check --json | jq -r '.checks[] | select(.ok | not) | .name'\n"
			   "                           the names of the missing requirements\n");
	auto json = std::make_shared<bool>(false);
	cmd->add_flag("--json", *json, "print {\"ok\": bool, \"checks\": [{\"name\", \"ok\", \"detail\"}]} on stdout");

	return [json]() -> Status {
		auto results = check::run_all_probes();
		Status st = check::verdict(results);
		if (*json)
			print_json(results, bool(st));
		else
			print_text(results);
		std::fflush(stdout);
		return st;
	};
}

}  // namespace bpfckpt::cli
