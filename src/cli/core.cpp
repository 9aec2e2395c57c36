// bpfckpt core -D DIR -o OUT [--pid P] [--json]
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/write_cores.h"

namespace bpfckpt::cli {

namespace {

void print_report(const core::CoresReport& rep, bool json)
{
	if (json) {
		nlohmann::json cores = nlohmann::json::array();
		for (const auto& c : rep.cores)
			cores.push_back({{"pid", c.pid},
					 {"path", c.path},
					 {"exe", c.exe},
					 {"threads", c.threads},
					 {"mappings", c.mappings},
					 {"size", c.size},
					 {"bytes_written", c.bytes_written}});
		fmt::print("{}\n", nlohmann::json{{"cores", cores},
						  {"zombies", rep.zombies},
						  {"time_us", uint64_t(rep.seconds * 1e6)}}
					   .dump());
		return;
	}
	for (const auto& c : rep.cores)
		fmt::print("pid {}: {} ({} thread(s), {} mapping(s), {} MiB written)\n  open it with: gdb {} {}\n", c.pid,
			   c.path, c.threads, c.mappings, c.bytes_written >> 20, c.exe, c.path);
	for (uint32_t pid : rep.zombies)
		fmt::print("pid {}: a zombie, no core\n", pid);
}

}  // namespace

Run add_core(CLI::App& root)
{
	auto opt = std::make_shared<core::CoreOptions>();
	auto pid = std::make_shared<uint32_t>(0);
	auto json = std::make_shared<bool>(false);
	CLI::App* cmd = root.add_subcommand("core", "Write an image's processes as ELF core files for gdb");
	cmd->add_option("-D,--images-dir", opt->dir, "image directory")->required();
	cmd->add_option("-o,--output", opt->out, "directory for the cores, core.<pid> each (created 0700 if missing)")
		->required();
	CLI::Option* pid_opt = cmd->add_option(
		"--pid", *pid, "only this process; exit 3 when the image does not hold it (or holds it as a zombie)");
	cmd->add_flag("--json", *json, "print what was written as JSON");
	set_examples(*cmd, "  bpfckpt core -D img -o cores                one core per process: cores/core.<pid>\n"
			   "  gdb /path/to/exe cores/core.1234            open one (the exe the process ran)\n"
			   "  bpfckpt core -D img -o cores --pid 1234     only process 1234\n"
			   "  gdb -batch -ex 'thread apply all bt' /path/to/exe cores/core.1234\n");
	return [opt, pid, pid_opt, json]() -> Status {
		if (pid_opt->count())
			opt->pid = *pid;
		core::CoresReport rep = BCK_TRY(core::write_cores(*opt));
		print_report(rep, *json);
		return {};
	};
}

}  // namespace bpfckpt::cli
