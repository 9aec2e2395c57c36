// bpfckpt show DIR [--json]: what an image holds, with each process's memory map in /proc/PID/maps form.
#include <sys/mman.h>
#include <sys/sysmacros.h>

#include <fmt/format.h>

#include "cli/commands.h"
#include "common/fs.h"
#include "image/json.h"

namespace bpfckpt::cli {

namespace {

std::string maps_line(const image::Vma& v)
{
	// The kernel's dev_t encoding (major << 20 | minor) as /proc/PID/maps prints it.
	unsigned major = unsigned(v.dev >> 20), minor = unsigned(v.dev & 0xfffff);
	std::string perms = fmt::format("{}{}{}{}", (v.prot & PROT_READ) ? 'r' : '-', (v.prot & PROT_WRITE) ? 'w' : '-',
					(v.prot & PROT_EXEC) ? 'x' : '-', v.shared ? 's' : 'p');
	uint64_t pages = 0;
	for (const auto& r : v.pages)
		pages += r.npages;
	return fmt::format("{:x}-{:x} {} {:08x} {:02x}:{:02x} {:<8} {:<40} {}", v.start, v.end, perms, v.offset, major,
			   minor, v.ino, v.path, pages ? fmt::format("[{} pages saved]", pages) : "");
}

void print_process(const image::Image& img, const image::Process& p)
{
	fmt::print("process {} ({}) ppid {} pgid {} sid {} state {}\n", p.pid, p.comm, p.ppid, p.pgid, p.sid, p.state);
	fmt::print("  exe {}  cwd {}  root {}\n", p.exe, p.cwd, p.root);
	for (const auto& t : p.threads)
		fmt::print("  thread {} ({}) {} rip {:x}{}\n", t.tid, t.comm, t.state,
			   t.regs.gpr.count("rip") ? t.regs.gpr.at("rip") : 0,
			   t.syscall.in_syscall ? fmt::format(" in syscall {}", t.syscall.nr) : "");
	for (const auto& v : p.vmas)
		fmt::print("  {}\n", maps_line(v));
	for (const auto& fd : p.fds) {
		const image::File& f = img.files.at(fd.file);
		fmt::print("  fd {:<4} {:<9} {} pos {} flags 0{:o}{}{}\n", fd.fd, f.kind, f.path, f.pos, f.flags,
			   fd.cloexec ? " cloexec" : "", f.external ? " external " + f.external_key : "");
	}
}

}  // namespace

Run add_show(CLI::App& root)
{
	auto dir = std::make_shared<std::string>();
	auto json = std::make_shared<bool>(false);
	CLI::App* cmd = root.add_subcommand("show", "Show what an image holds");
	cmd->add_option("DIR", *dir, "image directory")->required();
	cmd->add_flag("--json", *json, "print the image index as JSON");
	set_examples(*cmd, "  bpfckpt show img                        process tree, threads, memory maps, fds\n"
			   "  bpfckpt show img --json | jq '.processes[].pid'\n");
	return [dir, json]() -> Status {
		std::string text = BCK_TRY(read_file(*dir + "/index.json"));
		image::Image img = BCK_TRY(context(image::parse_index(text), "{}", *dir));
		if (*json) {
			fmt::print("{}\n", image::to_json_value(img).dump(1, '\t'));
			return {};
		}
		fmt::print("image {} (format {}, bpfckpt {}, {} on {} {})\n", *dir, img.format_version,
			   img.tool_version, img.created, img.host.kernel, img.host.arch);
		uint64_t bytes = 0;
		for (const auto& b : img.blobs)
			bytes += b.size;
		fmt::print("{} process(es), {} blob(s), {} bytes\n", img.processes.size(), img.blobs.size(), bytes);
		for (const auto& p : img.processes) {
			for (const auto& fd : p.fds)
				if (fd.file >= img.files.size())
					return fail(ExitCode::bad_image, "{}: pid {} fd {} refers to a missing file", *dir,
						    p.pid, fd.fd);
			print_process(img, p);
		}
		return {};
	};
}

}  // namespace bpfckpt::cli
