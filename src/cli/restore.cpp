// bpfckpt restore -D DIR [-d] [--pidns] [--root DIR] [--check] [--stats] [--json]
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "restore/restore.h"

namespace bpfckpt::cli {

namespace {

// --check: one line per finding, then the verdict; exit 0 when nothing blocks, 6 (unsupported) otherwise.
int print_findings(const std::vector<restore::Finding>& findings, bool json)
{
	size_t blocking = 0;
	for (const auto& f : findings)
		blocking += f.blocks;
	if (json) {
		nlohmann::json list = nlohmann::json::array();
		for (const auto& f : findings)
			list.push_back({{"status", f.blocks ? "refuse" : "note"}, {"check", f.check}, {"object", f.object},
					{"detail", f.detail}, {"meaning", f.meaning}});
		fmt::print("{}\n", nlohmann::json{{"restorable", blocking == 0}, {"findings", list}}.dump());
	} else {
		for (const auto& f : findings)
			fmt::print("{}: {}: {}\n", f.blocks ? "refuse" : "note", f.check, f.message());
		if (blocking)
			fmt::print("restore would be refused: {} problem{}\n", blocking, blocking == 1 ? "" : "s");
		else
			fmt::print("restore would work\n");
	}
	return blocking ? int(ExitCode::unsupported) : int(ExitCode::ok);
}

}  // namespace

Run add_restore(CLI::App& root, int* exit_status)
{
	auto opt = std::make_shared<restore::RestoreOptions>();
	auto stats = std::make_shared<bool>(false);
	auto json = std::make_shared<bool>(false);
	auto inherit = std::make_shared<std::vector<std::string>>();
	auto check = std::make_shared<bool>(false);
	CLI::App* cmd = root.add_subcommand("restore", "Bring a dumped process tree back to life");
	cmd->add_option("-D,--images-dir", opt->dir, "image directory")->required();
	cmd->add_flag("-d,--restore-detached", opt->detach,
		      "return once every restored thread runs (default: wait for the root, exit with its status)");
	cmd->add_flag("--pidns", opt->pidns,
		      "restore into a new PID namespace under a small init; saved PIDs are kept inside it, so they need "
		      "not be free outside");
	cmd->add_option("--inherit-fd", *inherit,
			"fd[N]:KEY: connect the image's external file KEY (as `show` lists it: pipe:[ino], socket:[ino], a "
			"tty path) to our fd N; the default is our stdin for read ends, stdout otherwise");
	cmd->add_option("--cgroup", opt->cgroup,
			"cgroup images: recreate the saved cgroup tree under this cgroup v2 path instead of the saved one");
	cmd->add_option("--root", opt->root,
			"look for the image's files (executables, mapped files, open files, cwd) beneath DIR first, "
			"then at their own paths; each must have the size and content digest recorded at the dump")
		->type_name("DIR");
	cmd->add_flag("--check", *check,
		      "restore nothing: print what differs on this machine (kernel, CPU, PIDs, cgroup, files) and what it "
		      "means, one line each; exit 0 when a restore would work, 6 when it would be refused");
	cmd->add_flag("--stats", *stats, "print forking_time, restore_time (microseconds), pages_restored");
	cmd->add_flag("--json", *json, "print the stats (with --check: the findings) as JSON");
	set_examples(*cmd, "  bpfckpt restore -D img -d            restore and return at once\n"
			   "  bpfckpt restore -D img                restore, wait, exit with the root's status\n"
			   "  bpfckpt restore -D img --pidns -d    restore even though the saved PIDs are taken\n"
			   "  bpfckpt restore -D img -d --cgroup ci/job1-copy   a cgroup snap, into another cgroup\n"
			   "  bpfckpt restore -D img --inherit-fd 'fd[3]:pipe:[12345]' 3>log   the saved pipe writes to log\n"
			   "  bpfckpt restore -D img --check --root /srv/copy   would it restore here, files from a copy?\n"
			   "  bpfckpt restore -D img --root /srv/copy --pidns   restore an image taken on another machine\n");
	return [opt, stats, json, inherit, check, exit_status]() -> Status {
		for (const std::string& arg : *inherit)
			opt->inherit.insert(BCK_TRY(restore::parse_inherit_fd(arg)));
		if (*check) {
			*exit_status = print_findings(BCK_TRY(restore::check_image(*opt)), *json);
			return {};
		}
		auto st = BCK_TRY(restore::restore_image(*opt));
		auto us = [](double s) { return uint64_t(s * 1e6); };
		if (*json)
			fmt::print("{}\n", nlohmann::json{{"forking_time", us(st.forking_time)},
							  {"restore_time", us(st.restore_time)},
							  {"pages_restored", st.pages_restored},
							  {"processes", st.processes}}
						.dump());
		else if (*stats)
			fmt::print(stderr, "forking_time: {} us\nrestore_time: {} us\npages_restored: {}\n",
				   us(st.forking_time), us(st.restore_time), st.pages_restored);
		*exit_status = st.root_status;
		return {};
	};
}

}  // namespace bpfckpt::cli
