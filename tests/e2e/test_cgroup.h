// A cgroup v2 directory of one e2e test, removed with everything in it on every path (snap, watch and exec tests).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "common/cgroup.h"
#include "harness.h"

namespace e2e {

inline bool write_control(const fs::path& file, const std::string& value)
{
	int fd = open(file.c_str(), O_WRONLY | O_CLOEXEC);
	bool ok = fd >= 0 && write(fd, value.data(), value.size()) == ssize_t(value.size());
	if (fd >= 0)
		close(fd);
	return ok;
}

// A "key value" line of a flat-keyed cgroup file (cgroup.events): -1 when missing.
inline long events_key(const fs::path& dir, const std::string& key)
{
	std::istringstream in(read_file(dir / "cgroup.events").value_or(""));
	std::string k;
	long v;
	while (in >> k >> v)
		if (k == key)
			return v;
	return -1;
}

// A cgroup of one test, /<mount>/bpfckpt-e2e-<tag>-<our pid>-<n>. The destructor thaws it and everything below
// it, kills what is left (cgroup.kill), reaps our zombie children (the processes in it are ours: we started them,
// or they were orphaned to us, a child subreaper) and removes the directories, deepest first. Constructed with
// create=false it only names a path (where a restore --cgroup will create it) and cleans up whatever is there.
class TestCgroup {
public:
	explicit TestCgroup(const std::string& tag, bool create = true)
	{
		auto mount = bpfckpt::cgroup::v2_mount();
		if (!mount) {
			error_ = mount.error().describe();
			return;
		}
		static int counter = 0;
		mount_ = *mount;
		path_ = fmt::format("/bpfckpt-e2e-{}-{}-{}", tag, getpid(), ++counter);
		if (create && mkdir(dir().c_str(), 0755) != 0) {
			error_ = fmt::format("mkdir {}: {}", dir(), strerror(errno));
			path_.clear();
		}
	}
	~TestCgroup() { destroy(); }
	TestCgroup(const TestCgroup&) = delete;
	TestCgroup& operator=(const TestCgroup&) = delete;

	bool ok() const { return !path_.empty(); }
	const std::string& error() const { return error_; }
	const std::string& mount() const { return mount_; }
	// Below the mount, as /proc/PID/cgroup shows it: "/bpfckpt-e2e-...", or ".../rel".
	std::string path(const std::string& rel = "") const { return rel.empty() ? path_ : path_ + "/" + rel; }
	std::string dir(const std::string& rel = "") const { return mount_ + path(rel); }

	// mkdir -p of a child cgroup.
	bool make(const std::string& rel) const
	{
		std::error_code ec;
		fs::create_directories(dir(rel), ec);
		return !ec;
	}

	// The cgroup and its descendants, parents first, relative to it ("" for itself).
	std::vector<std::string> tree() const
	{
		std::vector<std::string> out;
		std::error_code ec;
		if (!fs::is_directory(dir(), ec))
			return out;
		out.push_back("");
		for (auto it = fs::recursive_directory_iterator(dir(), ec); !ec && it != fs::recursive_directory_iterator();
		     it.increment(ec))
			if (it->is_directory())
				out.push_back(fs::relative(it->path(), dir()).string());
		std::sort(out.begin(), out.end());  // a parent sorts before its children
		return out;
	}

	// cgroup.freeze of every cgroup in the tree that is not "0", for failure messages ("" when all are thawed).
	std::string frozen_ones() const
	{
		std::string out;
		for (const std::string& rel : tree()) {
			std::string v = trim_nl(read_file(dir(rel) + "/cgroup.freeze").value_or("?"));
			long frozen = events_key(dir(rel), "frozen");
			if (v != "0" || frozen != 0)
				out += fmt::format(" {} (cgroup.freeze {}, frozen {})", path(rel), v, frozen);
		}
		return out;
	}

	bool populated() const { return events_key(dir(), "populated") == 1; }

private:
	void destroy()
	{
		std::error_code ec;
		if (path_.empty() || !fs::is_directory(dir(), ec))
			return;
		std::vector<std::string> rels = tree();
		for (const std::string& rel : rels)
			write_control(dir(rel) + "/cgroup.freeze", "0");
		write_control(dir() + "/cgroup.kill", "1");
		auto deadline = Clock::now() + 10s;
		while (populated() && Clock::now() < deadline)
			std::this_thread::sleep_for(5ms);
		reap_children(deadline);
		for (auto it = rels.rbegin(); it != rels.rend(); ++it)
			while (rmdir(dir(*it).c_str()) != 0 && errno == EBUSY && Clock::now() < deadline)
				std::this_thread::sleep_for(10ms);
	}

	// Every zombie child of ours. The guard is declared first in a test, so it runs last: no other guard of the test
	// is left to reap a child it knows.
	static void reap_children(Clock::time_point deadline)
	{
		for (;;) {
			int st;
			pid_t r = waitpid(-1, &st, WNOHANG | __WALL);
			if (r < 0 || (r == 0 && Clock::now() > deadline))
				return;
			if (r == 0)
				std::this_thread::sleep_for(5ms);
		}
	}

	std::string mount_, path_, error_;
};

#define ASSERT_CGROUP(cg) ASSERT_TRUE((cg).ok()) << "cannot create a test cgroup: " << (cg).error()

}  // namespace e2e
