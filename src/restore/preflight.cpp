#include "restore/preflight.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "bpfckpt/compat.h"
#include "common/cgroup.h"
#include "common/fs.h"
#include "restore/shim_loader.h"

namespace bpfckpt::restore {

namespace {

Finding refuse(ExitCode exit, std::string check, std::string object, std::string detail, std::string meaning)
{
	return {true, exit, std::move(check), std::move(object), std::move(detail), std::move(meaning)};
}

Finding note(std::string check, std::string object, std::string detail, std::string meaning)
{
	return {false, ExitCode::ok, std::move(check), std::move(object), std::move(detail), std::move(meaning)};
}

// A dumped and killed process holds its PID until its parent reaps it, usually a moment later: a zombie holder is
// waited for, briefly; a live one is reported.
bool pid_taken(uint32_t pid)
{
	std::string path = fmt::format("/proc/{}/stat", pid);
	for (int i = 0; i < 50; i++) {
		std::string stat;
		if (auto s = read_file(path))
			stat = *s;
		else
			return false;
		auto paren = stat.rfind(')');
		if (paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] != 'Z')
			return true;
		usleep(40000);
	}
	return true;
}

// Whether timer_create() can be told the id to use. The GET query changes nothing.
bool timer_ids_settable()
{
	return prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_GET, 0, 0, 0) >= 0;
}

// Our capability bounding set, and the capabilities this kernel knows (PR_CAPBSET_READ fails past the last one).
std::pair<uint64_t, uint64_t> own_bounding_set()
{
	uint64_t bset = 0, known = 0;
	for (int cap = 0; cap < 64; cap++) {
		int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
		if (r < 0)
			break;
		known |= 1ull << cap;
		if (r)
			bset |= 1ull << cap;
	}
	return {bset, known};
}

// XSAVE features this CPU and kernel enable (XCR0): registers saved with a feature missing here cannot come back.
uint64_t current_xcr0()
{
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (uint64_t(hi) << 32) | lo;
}

std::set<std::string> cpu_flags_here()
{
	std::set<std::string> flags;
	auto info = read_file("/proc/cpuinfo");
	if (!info)
		return flags;
	std::istringstream in(*info);
	for (std::string line; std::getline(in, line);)
		if (line.rfind("flags", 0) == 0) {
			std::istringstream words(line.substr(line.find(':') + 1));
			for (std::string w; words >> w;)
				flags.insert(w);
			break;
		}
	return flags;
}

void check_host(const image::Image& img, std::vector<Finding>& out)
{
	utsname u{};
	uname(&u);
	if (img.host.arch != u.machine)
		out.push_back(refuse(ExitCode::unsupported, "arch", img.host.arch,
				     fmt::format("the image is of {}, this machine is {}", img.host.arch, u.machine),
				     "its code and registers cannot run here"));
	if (img.host.kernel != u.release)
		out.push_back(note("kernel", u.release,
				   fmt::format("the image was taken on kernel {}, this machine runs {}", img.host.kernel,
					       u.release),
				   "the processes get this kernel's vdso and vvar, moved to their saved addresses (a vdso "
				   "line follows if their layout differs), and its system calls from now on"));
}

void check_cpu(const image::Image& img, std::vector<Finding>& out)
{
	uint64_t here = current_xcr0();
	if (uint64_t missing = img.host.xcr0 & ~here)
		out.push_back(refuse(ExitCode::unsupported, "xstate", "XSAVE features",
				     fmt::format("the image's registers use XSAVE features {:#x} this CPU does not enable "
						 "(image XCR0 {:#x}, here {:#x})", missing, img.host.xcr0, here),
				     "their state cannot be loaded here: restore on a CPU with these features"));
	std::set<std::string> flags = cpu_flags_here();
	std::vector<std::string> lacking;
	for (const std::string& f : img.host.cpu_flags)
		if (!flags.count(f))
			lacking.push_back(f);
	if (lacking.empty() || flags.empty())
		return;
	std::string list;
	for (size_t i = 0; i < lacking.size() && i < 16; i++)
		list += (i ? " " : "") + lacking[i];
	if (lacking.size() > 16)
		list += fmt::format(" and {} more", lacking.size() - 16);
	out.push_back(note("cpu", "cpu flags", "the image's CPU had flags this one lacks: " + list,
			   "code that picked an implementation by CPU feature at start-up (glibc's string functions, "
			   "JITs) may die of SIGILL when it runs it"));
}

void check_processes(const image::Image& img, const PreflightOptions& opt, std::vector<Finding>& out)
{
	std::set<std::string> vdso_seen;
	auto [own_bset, known_caps] = own_bounding_set();
	for (const auto& p : img.processes) {
		std::string pid = fmt::format("pid {}", p.pid);
		if (uint64_t missing = p.creds.cap_bset & known_caps & ~own_bset; missing && p.state != "zombie")
			out.push_back(refuse(ExitCode::permission, "caps", pid,
					     fmt::format("its capability bounding set holds {:#x}, which restore's lacks",
							 missing),
					     "a bounding set only ever shrinks: restore from a process whose bounding set "
					     "holds them"));
		if (!p.posix_timers.empty() && !timer_ids_settable())
			out.push_back(refuse(ExitCode::kernel, "timers", pid,
					     fmt::format("holds {} POSIX timers; this kernel lacks "
							 "PR_TIMER_CREATE_RESTORE_IDS (Linux 6.15)", p.posix_timers.size()),
					     "their ids cannot be given back: restore on a newer kernel"));
		if (opt.pidns && p.pid == 1)
			out.push_back(refuse(ExitCode::unsupported, "pid", pid, "is PID 1 in the image",
					     "under --pidns PID 1 is bpfckpt's init"));
		for (const auto& t : p.threads)
			if (!opt.pidns && pid_taken(t.tid))
				out.push_back(refuse(ExitCode::target_busy, "pid", fmt::format("pid {}", t.tid),
						     "in use on this machine (the dumped process, or another, still holds it)",
						     "free it, or restore with --pidns"));
		if (p.state == "zombie")
			continue;
		if (Status st = check_special_mappings(p); !st && vdso_seen.insert(st.error().msg).second)
			out.push_back(refuse(st.error().exit, "vdso", pid, st.error().msg.substr(pid.size() + 2),
					     "this kernel's vdso cannot be put where the process expects it: restore on a "
					     "kernel like the image's"));
	}
}

void check_cgroup(const image::Image& img, const PreflightOptions& opt, std::vector<Finding>& out)
{
	if (img.target.kind != "cgroup") {
		if (!opt.cgroup.empty())
			out.push_back(refuse(ExitCode::usage, "cgroup", opt.cgroup, "the image is of a process tree",
					     "--cgroup applies to cgroup images only"));
		return;
	}
	auto mount = cgroup::v2_mount();
	if (!mount) {
		out.push_back(refuse(ExitCode::kernel, "cgroup", img.target.cgroup, mount.error().describe(),
				     "a cgroup image needs cgroup v2 to put its processes back"));
		return;
	}
	auto base = cgroup_base(img, *mount, opt.cgroup);
	if (!base) {
		out.push_back(refuse(base.error().exit, "cgroup", opt.cgroup.empty() ? img.target.cgroup : opt.cgroup,
				     "is the root cgroup, the whole machine", "name a cgroup below it with --cgroup"));
		return;
	}
	if (access((*mount + *base).c_str(), F_OK) != 0)
		out.push_back(note("cgroup", *base, "does not exist on this machine",
				   fmt::format("restore creates it, with the {} cgroups of the saved tree",
					       img.cgroups.size())));
}

// Every file a restore opens, once per path and inode: the executables, mapped files, regular files and directories
// at fds, the working and root directories.
std::vector<FileIdentity> files_to_check(const image::Image& img, bool under_root)
{
	std::vector<FileIdentity> ids;
	std::set<std::tuple<std::string, uint64_t, bool>> seen;  // the executable is a mapped file too: listed once
	auto add = [&](FileIdentity id) {
		if (seen.emplace(id.path, id.ino, id.directory).second)
			ids.push_back(std::move(id));
	};
	for (const image::Process& p : img.processes) {
		if (p.state == "zombie")
			continue;
		add(exe_identity(p));
		for (const image::Vma& v : p.vmas)
			if (maps_file_on_disk(v))
				add(identity_of(v));
		add(dir_identity("cwd", p.cwd));
		if (p.root != "/")
			add(dir_identity("root", p.root));
	}
	for (const image::File& f : img.files)
		if (!f.external && (f.kind == "regular" || f.kind == "directory"))
			add(identity_of(f, under_root));
	return ids;
}

void check_files(const image::Image& img, const FileLookup& look, std::vector<Finding>& out)
{
	for (const FileIdentity& id : files_to_check(img, look.has_root())) {
		std::string object = id.what + " " + id.path;
		int flags = id.directory ? O_PATH | O_DIRECTORY : O_RDONLY | O_NONBLOCK | O_NOCTTY;
		auto found = look.open(id, flags);
		if (!found) {
			std::string why = found.error().describe();
			if (why.rfind(object + ": ", 0) == 0)
				why = why.substr(object.size() + 2);
			out.push_back(refuse(found.error().exit, "file", object, why,
					     look.has_root() ? "put the dumped file there, or point --root at a copy of it"
							     : "put the dumped file back, or restore with --root DIR holding "
							       "a copy of it"));
		} else if (found->by_content && !look.has_root()) {  // under --root, inodes are expected to differ
			out.push_back(note("file", object,
					   fmt::format("another inode or mtime than at the dump, same size and content ({})",
						       found->where),
					   "restore uses it"));
		} else if (found->outside_root) {
			out.push_back(note("file", object,
					   fmt::format("not under {}: found at its own path on this machine, same size and "
						       "content", look.root()),
					   "restore uses it"));
		}
	}
}

}  // namespace

std::string Finding::message() const { return fmt::format("{}: {}; {}", object, detail, meaning); }

Result<std::string> cgroup_base(const image::Image& img, const std::string& mount, const std::string& override_path)
{
	std::string path = override_path.empty() ? img.target.cgroup : override_path;
	if (path.rfind(mount + "/", 0) == 0)
		path = path.substr(mount.size());
	if (path.empty() || path[0] != '/')
		path = "/" + path;
	while (path.size() > 1 && path.back() == '/')
		path.pop_back();
	if (path == "/")
		return fail(ExitCode::usage, "cgroup {}: restoring into the root cgroup is refused; name one below it",
			    override_path.empty() ? img.target.cgroup : override_path);
	return path;
}

std::vector<Finding> preflight(const image::Image& img, const PreflightOptions& opt, const FileLookup& look)
{
	std::vector<Finding> out;
	check_host(img, out);
	check_cpu(img, out);
	check_processes(img, opt, out);
	check_cgroup(img, opt, out);
	check_files(img, look, out);
	return out;
}

}  // namespace bpfckpt::restore
