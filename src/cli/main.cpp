// bpfckpt: checkpoint/restore with BPF iterators. Errors are reported once, here, as one line with a distinct
// exit code (common/exit_codes.h).
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "cli/commands.h"
#include "common/huge_heap.h"
#include "common/log.h"

using namespace bpfckpt;

namespace bpfckpt::cli {

void set_examples(CLI::App& cmd, const char* text)
{
	cmd.footer(std::string("\nExamples:\n") + text);
}

}  // namespace bpfckpt::cli

int main(int argc, char** argv)
{
	// Address space only: what a dump of thousands of processes parses and builds fits, in 2 MiB pages.
	back_heap_with_huge_pages(size_t(256) << 20);
	CLI::App app{"bpfckpt: checkpoint/restore of Linux processes, with BPF iterators collecting kernel state"};
	app.require_subcommand(1);
	app.set_version_flag("--version", BPFCKPT_VERSION);
	cli::set_examples(app, "  bpfckpt check                     can this machine dump?\n"
			       "  bpfckpt dump -t 1234 -D img -R    dump pid 1234 and its children, leave them running\n"
			       "  bpfckpt snap ci/job1 -D img       snap every process of a cgroup, then kill them\n"
			       "  bpfckpt show img                  what the image holds\n"
			       "  bpfckpt restore -D img -d         bring it back, detached\n");
	int verbose = 0;
	app.add_flag("-v,--verbose", verbose, "more detail on stderr (repeat for more)");

	std::vector<std::pair<CLI::App*, cli::Run>> commands;
	auto add = [&](cli::Run run) { commands.emplace_back(app.get_subcommands({}).back(), std::move(run)); };
	add(cli::add_check(app));
	add(cli::add_dump(app));
	add(cli::add_snap(app));
	add(cli::add_thaw(app));
	add(cli::add_untrack(app));
	add(cli::add_watch(app));
	add(cli::add_show(app));
	add(cli::add_core(app));
	int exit_status = 0;
	add(cli::add_restore(app, &exit_status));
	add(cli::add_exec(app, &exit_status));

	try {
		app.parse(argc, argv);
	} catch (const CLI::ParseError& e) {
		int rc = app.exit(e);
		return rc == 0 ? 0 : int(ExitCode::usage);
	}
	log::set_verbosity(verbose);
	for (auto& [cmd, run] : commands) {
		if (!cmd->parsed())
			continue;
		Status st = run();
		if (!st) {
			std::fprintf(stderr, "bpfckpt %s: error: %s\n", cmd->get_name().c_str(),
				     st.error().describe().c_str());
			return int(st.error().exit);
		}
		return exit_status;
	}
	return int(ExitCode::usage);
}
