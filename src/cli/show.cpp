// bpfckpt show DIR [--json]: what an image holds, with each process's memory map in /proc/PID/maps form, and for an
// incremental image its chain of parents and where each process's pages come from.
#include <sys/mman.h>
#include <sys/sysmacros.h>

#include <fmt/format.h>

#include "cli/commands.h"
#include "common/fs.h"
#include "image/chain.h"
#include "image/json.h"

namespace bpfckpt::cli {

namespace {

std::string maps_line(const image::Vma& v)
{
	// The kernel's dev_t encoding (major << 20 | minor) as /proc/PID/maps prints it.
	unsigned major = unsigned(v.dev >> 20), minor = unsigned(v.dev & 0xfffff);
	std::string perms = fmt::format("{}{}{}{}", (v.prot & PROT_READ) ? 'r' : '-', (v.prot & PROT_WRITE) ? 'w' : '-',
					(v.prot & PROT_EXEC) ? 'x' : '-', v.shared ? 's' : 'p');
	uint64_t pages = 0, zero = 0;
	for (const auto& r : v.pages)
		pages += r.npages;
	for (const auto& z : v.zero)
		zero += z.npages;
	std::string saved = pages ? fmt::format("[{} pages saved]", pages) : "";
	if (v.inherit)
		saved += fmt::format("{}[inherits{}]", saved.empty() ? "" : " ", zero ? fmt::format(", {} zero", zero) : "");
	return fmt::format("{:x}-{:x} {} {:08x} {:02x}:{:02x} {:<8} {:<40} {}", v.start, v.end, perms, v.offset, major,
			   minor, v.ino, v.path, saved);
}

// The chain behind an image, loaded without reading the blobs (show only looks). A broken link is shown, and
// reported once everything else is.
using MaybeChain = Result<image::Chain>;

std::string pages_line(const MaybeChain& chain, const image::Process& p)
{
	if (!chain)
		return "pages: chain broken";
	auto c = chain->count_pages(p.pid);
	if (!c)
		return "pages: " + c.error().describe();
	return fmt::format("pages: {} own, {} inherited, {} zero", c->own, c->inherited, c->zero);
}

void print_chain(const image::Image& img, const MaybeChain& chain)
{
	fmt::print("id {}\n", img.id);
	if (!img.parent)
		return;
	fmt::print("parent {} (id {})\n", *img.parent, img.parent_id);
	if (!chain) {
		fmt::print("chain broken: {}\n", chain.error().describe());
		return;
	}
	fmt::print("chain of {} images, newest first:\n", chain->depth());
	for (size_t i = 0; i < chain->depth(); i++)
		fmt::print("  {} (id {})\n", chain->link(i).dir, chain->link(i).image.id);
}

nlohmann::json chain_json(const image::Image& img, const MaybeChain& chain)
{
	if (!chain)
		return {{"error", chain.error().describe()}};
	nlohmann::json images = nlohmann::json::array(), procs = nlohmann::json::array();
	for (size_t i = 0; i < chain->depth(); i++)
		images.push_back({{"dir", chain->link(i).dir}, {"id", chain->link(i).image.id}});
	for (const auto& p : img.processes)
		if (auto c = chain->count_pages(p.pid))
			procs.push_back({{"pid", p.pid}, {"own_pages", c->own}, {"inherited_pages", c->inherited},
					 {"zero_pages", c->zero}});
	return {{"images", images}, {"processes", procs}};
}

void print_process(const image::Image& img, const image::Process& p, const MaybeChain& chain)
{
	fmt::print("process {} ({}) ppid {} pgid {} sid {} state {}\n", p.pid, p.comm, p.ppid, p.pgid, p.sid, p.state);
	fmt::print("  exe {}  cwd {}  root {}\n", p.exe, p.cwd, p.root);
	fmt::print("  {}\n", pages_line(chain, p));
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
	cmd->add_flag("--json", *json, "print the image index as JSON, with its chain under \"chain\"");
	set_examples(*cmd, "  bpfckpt show img                        process tree, threads, memory maps, fds\n"
			   "  bpfckpt show img --json | jq '.processes[].pid'\n"
			   "  bpfckpt show snaps/20261125T090005.123Z --json | jq '.chain'   parents, pages own/inherited\n");
	return [dir, json]() -> Status {
		std::string text = BCK_TRY(read_file(*dir + "/index.json"));
		image::Image img = BCK_TRY(context(image::parse_index(text), "{}", *dir));
		MaybeChain chain = image::Chain::load(*dir, false);
		if (*json) {
			nlohmann::json out = image::to_json_value(img);
			out["chain"] = chain_json(img, chain);
			fmt::print("{}\n", out.dump(1, '\t'));
			return chain ? Status() : std::unexpected(chain.error());
		}
		fmt::print("image {} (format {}, bpfckpt {}, {} on {} {})\n", *dir, img.format_version,
			   img.tool_version, img.created, img.host.kernel, img.host.arch);
		uint64_t bytes = 0;
		for (const auto& b : img.blobs)
			bytes += b.size;
		fmt::print("{} process(es), {} blob(s), {} bytes\n", img.processes.size(), img.blobs.size(), bytes);
		print_chain(img, chain);
		for (const auto& p : img.processes) {
			for (const auto& fd : p.fds)
				if (fd.file >= img.files.size())
					return fail(ExitCode::bad_image, "{}: pid {} fd {} refers to a missing file", *dir,
						    p.pid, fd.fd);
			print_process(img, p, chain);
		}
		return chain ? Status() : std::unexpected(chain.error());
	};
}

}  // namespace bpfckpt::cli
