#include "common/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "common/clock.h"
#include "common/fd.h"
#include "common/fs.h"

namespace bpfckpt::cgroup {

namespace {

// A cgroup control file is written with one write(2): the kernel parses each write as a whole.
Status write_control(const std::string& path, const std::string& value)
{
	UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
	if (!fd)
		return fail_sys(errno, "open {}", path);
	if (::write(fd.get(), value.data(), value.size()) != ssize_t(value.size()))
		return fail_sys(errno, "write {:?} to {}", value, path);
	return {};
}

// One "key value" line of a flat-keyed file such as cgroup.events.
Result<long> read_key(const std::string& path, const std::string& key)
{
	std::string text = BCK_TRY(read_file(path));
	std::istringstream in(text);
	std::string k;
	long v;
	while (in >> k >> v)
		if (k == key)
			return v;
	return fail(ExitCode::kernel, "{}: no {:?} key", path, key);
}

std::string trim_slashes(std::string s)
{
	while (s.size() > 1 && s.back() == '/')
		s.pop_back();
	return s;
}

Status walk(const std::string& dir, const std::string& rel, std::vector<Member>& out)
{
	struct stat st;
	if (::stat(dir.c_str(), &st) != 0)
		return fail_sys(errno, "stat {}", dir);
	out.push_back({rel, uint64_t(st.st_ino)});
	DIR* d = ::opendir(dir.c_str());
	if (!d)
		return fail_sys(errno, "open {}", dir);
	std::vector<std::string> children;
	while (dirent* e = ::readdir(d))
		if (e->d_type == DT_DIR && strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			children.emplace_back(e->d_name);
	::closedir(d);
	std::sort(children.begin(), children.end());
	for (const std::string& c : children)
		BCK_CHECK(walk(dir + "/" + c, rel.empty() ? c : rel + "/" + c, out));
	return {};
}

}  // namespace

Result<std::string> v2_mount()
{
	std::string info = BCK_TRY(read_file("/proc/self/mountinfo"));
	std::istringstream in(info);
	for (std::string line; std::getline(in, line);) {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		auto dash = line.find(" - ");
		if (dash == std::string::npos)
			continue;
		std::istringstream tail(line.substr(dash + 3));
		std::string fstype;
		tail >> fstype;
		if (fstype != "cgroup2")
			continue;
		std::istringstream head(line.substr(0, dash));
		std::string id, parent, devno, root, mountpoint;
		head >> id >> parent >> devno >> root >> mountpoint;
		return mountpoint;
	}
	return fail(ExitCode::unsupported, "no cgroup2 filesystem is mounted (see /proc/self/mountinfo)");
}

Result<Cgroup> resolve(const std::string& arg)
{
	if (arg.empty())
		return fail(ExitCode::usage, "cgroup: empty path");
	Cgroup cg;
	cg.mount = BCK_TRY(v2_mount());
	std::string a = trim_slashes(arg);
	if (a == cg.mount || a.rfind(cg.mount + "/", 0) == 0)
		cg.path = a.size() == cg.mount.size() ? std::string(1, '/') : a.substr(cg.mount.size());
	else {
		struct statfs fs;
		if (a[0] == '/' && ::statfs(a.c_str(), &fs) == 0 && fs.f_type == CGROUP_SUPER_MAGIC)
			return fail(ExitCode::unsupported, "cgroup {}: a cgroup v1 hierarchy; bpfckpt needs cgroup v2 "
				    "(mounted at {})", arg, cg.mount);
		cg.path = a[0] == '/' ? a : "/" + a;
	}
	if (cg.path.find("/../") != std::string::npos || cg.path.ends_with("/.."))
		return fail(ExitCode::usage, "cgroup {}: '..' is not allowed", arg);
	struct stat st;
	if (::stat(cg.dir().c_str(), &st) != 0)
		return fail_errno(errno == ENOENT ? ExitCode::no_target : exit_for_errno(errno), errno,
				  "cgroup {}: no such cgroup under {}", arg, cg.mount);
	struct statfs fs;
	if (!S_ISDIR(st.st_mode) || ::statfs(cg.dir().c_str(), &fs) != 0 || fs.f_type != CGROUP2_SUPER_MAGIC)
		return fail(ExitCode::no_target, "cgroup {}: {} is not a cgroup v2 directory", arg, cg.dir());
	cg.id = uint64_t(st.st_ino);
	return cg;
}

Result<std::string> path_of(pid_t pid)
{
	std::string text = BCK_TRY(read_file(fmt::format("/proc/{}/cgroup", pid)));
	std::istringstream in(text);
	for (std::string line; std::getline(in, line);)
		if (line.rfind("0::", 0) == 0)
			return line.substr(3);
	return fail(ExitCode::unsupported, "pid {}: not in a cgroup v2 hierarchy", pid);
}

bool is_within(const std::string& inner, const std::string& outer)
{
	if (outer == "/" || inner == outer)
		return true;
	return inner.size() > outer.size() && inner.rfind(outer, 0) == 0 && inner[outer.size()] == '/';
}

Result<std::vector<Member>> subtree(const Cgroup& cg)
{
	std::vector<Member> out;
	BCK_CHECK(walk(cg.dir(), "", out));
	return out;
}

Status set_freeze(const Cgroup& cg, bool frozen)
{
	return write_control(cg.file("cgroup.freeze"), frozen ? "1" : "0");
}

Result<bool> freeze_requested(const Cgroup& cg)
{
	std::string v = BCK_TRY(read_file(cg.file("cgroup.freeze")));
	return !v.empty() && v[0] == '1';
}

bool process_held_frozen(pid_t pid)
{
	auto path = path_of(pid);
	for (std::string p = path.value_or("/"); p != "/" && !p.empty(); p = p.substr(0, p.rfind('/'))) {
		auto cg = resolve(p);
		if (cg && freeze_requested(*cg).value_or(false))
			return true;
	}
	return false;
}

Result<bool> is_frozen(const Cgroup& cg)
{
	return BCK_TRY(read_key(cg.file("cgroup.events"), "frozen")) == 1;
}

Result<bool> populated(const Cgroup& cg)
{
	return BCK_TRY(read_key(cg.file("cgroup.events"), "populated")) == 1;
}

Status wait_frozen(const Cgroup& cg, int timeout_ms)
{
	// cgroup.events signals every change with POLLPRI; each wake-up re-reads it.
	UniqueFd events(::open(cg.file("cgroup.events").c_str(), O_RDONLY | O_CLOEXEC));
	if (!events)
		return fail_sys(errno, "open {}", cg.file("cgroup.events"));
	double deadline = now_s() + timeout_ms / 1000.0;
	for (;;) {
		if (BCK_TRY(is_frozen(cg)))
			return {};
		double left = deadline - now_s();
		if (left <= 0)
			return fail(ExitCode::target_busy, "cgroup {}: not frozen after {} ms (a task stuck in the kernel?)",
				    cg.path, timeout_ms);
		pollfd p{events.get(), POLLPRI, 0};
		::poll(&p, 1, int(left * 1000) + 1);
	}
}

Status kill_all(const Cgroup& cg)
{
	return write_control(cg.file("cgroup.kill"), "1");
}

Result<std::vector<std::string>> create(const std::string& mount, const std::string& path)
{
	std::vector<std::string> made;
	std::string dir = mount;
	std::istringstream parts(path);
	for (std::string part; std::getline(parts, part, '/');) {
		if (part.empty())
			continue;
		if (part == "." || part == "..")
			return fail(ExitCode::usage, "cgroup {}: '{}' is not allowed in a path", path, part);
		dir += "/" + part;
		if (::mkdir(dir.c_str(), 0755) == 0)
			made.push_back(dir);
		else if (errno != EEXIST)
			return fail_sys(errno, "create cgroup {}", dir);
	}
	return made;
}

Status enter(const std::string& mount, const std::string& path)
{
	std::string dir = path == "/" || path.empty() ? mount : mount + path;
	return write_control(dir + "/cgroup.procs", "0");
}

}  // namespace bpfckpt::cgroup
