// Restore of kernel state beyond memory, threads and files (issue #3's last pieces): POSIX timers with their ids,
// the siginfo of queued signals, supplementary groups, the capability bounding and ambient sets. Each test dumps a
// workload that holds the state, kills it, restores it, compares what /proc shows, and lets the workload check
// itself (tests/workloads/README.md).
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <map>
#include <set>
#include <sstream>
#include <string>

#include "harness.h"
#include "restore_run.h"

namespace e2e {
namespace {

// /proc/PID/timers as a set of its per-timer blocks ("ID: 3\nsignal: 36/...\nnotify: signal/pid.N\nClockID: 1"):
// the kernel lists them newest first, a restore creates them in another order.
std::set<std::string> proc_timers(pid_t pid)
{
	std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/timers").value_or(""));
	std::set<std::string> blocks;
	std::string block;
	for (std::string line; std::getline(in, line);) {
		if (line.rfind("ID:", 0) == 0 && !block.empty())
			blocks.insert(block), block.clear();
		block += line + "\n";
	}
	if (!block.empty())
		blocks.insert(block);
	return blocks;
}

const json& only_process(const json& index) { return index.at("processes").at(0); }

// Dumps the workload (which dies) into img, loads its index, restores it detached.
testing::AssertionResult dump_kill_restore(Workload& wl, const fs::path& img, RestoreRun& rr, Restored& tree,
					   json& index)
{
	if (auto r = dump_ok(wl.pid(), img); !r)
		return r;
	auto loaded = load_index(img);
	if (!loaded)
		return testing::AssertionFailure() << "no index.json in " << img;
	index = *loaded;
	reap_dumped(wl, image_tids(index));
	return restore_detached(rr, tree, img, index);
}

TEST(RestoreState, PosixTimers)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(wl.start("posix_timers")) << wl.error();
	const json ready = wl.ready();
	pid_t pid = wl.pid();
	auto before = proc_timers(pid);
	ASSERT_EQ(before.size(), 5u) << "the workload's timers as /proc shows them";

	RestoreRun rr;
	Restored tree;
	json index;
	ASSERT_TRUE(dump_kill_restore(wl, tmp / "img", rr, tree, index));
	const json& timers = only_process(index).at("posix_timers");
	ASSERT_EQ(timers.size(), 5u);
	std::map<int, json> by_id;
	for (const json& t : timers)
		by_id[t.at("id").get<int>()] = t;
	std::vector<int> ids = ready.at("ids").get<std::vector<int>>();
	for (int id : ids)
		ASSERT_TRUE(by_id.count(id)) << "timer " << id << " is not in the image";
	const json& thread_timer = by_id[ids[1]];
	EXPECT_EQ(thread_timer.at("notify").get<int>(), SIGEV_THREAD_ID);
	EXPECT_EQ(thread_timer.at("tid").get<pid_t>(), ready.at("catcher_tid").get<pid_t>());
	EXPECT_EQ(thread_timer.at("sigval").get<uint64_t>() & 0xffffffff, 0x2222u);
	EXPECT_EQ(by_id[ids[0]].at("interval_ns").get<uint64_t>(), 50'000'000u);
	uint64_t none_left = by_id[ids[2]].at("value_ns").get<uint64_t>();
	EXPECT_TRUE(none_left > 990'000'000'000 && none_left <= 1000'000'000'000) << none_left;
	EXPECT_EQ(by_id[ids[3]].at("value_ns").get<uint64_t>(), 0u) << "the disarmed timer";
	EXPECT_EQ(by_id[ids[4]].at("clock").get<int>(), CLOCK_PROCESS_CPUTIME_ID);

	EXPECT_EQ(proc_timers(pid), before) << "ids, signals, sigvals, targets and clocks after the restore";
	EXPECT_EQ(verify_restored(rr, tree, pid), "PASS");
}

// Fields of each thread's /proc/PID/task/TID/status, keyed "TID Field".
std::map<std::string, std::string> thread_status(pid_t pid, const std::set<std::string>& fields)
{
	std::map<std::string, std::string> out;
	for (pid_t tid : thread_ids(pid)) {
		std::istringstream in(
		    read_file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/status").value_or(""));
		for (std::string line; std::getline(in, line);) {
			auto colon = line.find(':');
			if (colon != std::string::npos && fields.count(line.substr(0, colon)))
				out[std::to_string(tid) + " " + line.substr(0, colon)] = line.substr(colon + 1);
		}
	}
	return out;
}

// The process's ShdPnd and each thread's SigPnd: which signals are pending where.
std::map<std::string, std::string> pending_sets(pid_t pid)
{
	auto out = thread_status(pid, {"SigPnd"});
	out["ShdPnd"] = status_field(pid, "ShdPnd").value_or("?");
	return out;
}

TEST(RestoreState, QueuedSiginfo)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(wl.start("queued_signals")) << wl.error();
	pid_t pid = wl.pid(), worker = wl.ready().at("worker_tid").get<pid_t>();
	// One from another process: its si_pid is ours, which the workload knows as its first parent.
	ASSERT_EQ(sigqueue(pid, SIGRTMIN + 1, sigval{.sival_int = 0x104}), 0) << strerror(errno);
	auto before = pending_sets(pid);
	ASSERT_EQ(before.size(), 3u);

	RestoreRun rr;
	Restored tree;
	json index;
	ASSERT_TRUE(dump_kill_restore(wl, tmp / "img", rr, tree, index));
	const json& p = only_process(index);
	EXPECT_EQ(p.at("shared_siginfo").at("size").get<uint64_t>(), 5u * 128) << "SIGUSR2 and four SIGRTMIN+1";
	for (const json& t : p.at("threads"))
		EXPECT_EQ(t.at("siginfo").at("size").get<uint64_t>(), t.at("tid").get<pid_t>() == worker ? 128u : 0u)
		    << "thread " << t.at("tid");

	EXPECT_EQ(pending_sets(pid), before) << "pending signals, per queue";
	EXPECT_EQ(verify_restored(rr, tree, pid), "PASS");
}

// Every thread's ids, groups and capability sets.
std::map<std::string, std::string> thread_creds(pid_t pid)
{
	return thread_status(pid, {"Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"});
}

TEST(RestoreState, SupplementaryGroups)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(wl.start("creds", {"--groups"})) << wl.error();
	pid_t pid = wl.pid();
	auto before = thread_creds(pid);
	ASSERT_EQ(before.at(std::to_string(pid) + " Groups"), "\t4001 4002 4003 ");

	RestoreRun rr;
	Restored tree;
	json index;
	ASSERT_TRUE(dump_kill_restore(wl, tmp / "img", rr, tree, index));
	EXPECT_EQ(only_process(index).at("creds").at("groups"), json::array({4001, 4002, 4003}));
	EXPECT_EQ(thread_creds(pid), before) << "ids, groups and capabilities of every thread";
	EXPECT_EQ(verify_restored(rr, tree, pid), "PASS");
}

TEST(RestoreState, CapabilityBoundingAndAmbientSets)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(wl.start("creds", {"--caps"})) << wl.error();
	pid_t pid = wl.pid();
	auto before = thread_creds(pid);
	ASSERT_EQ(before.at(std::to_string(pid) + " CapAmb"), "\t0000000000000400") << "CAP_NET_BIND_SERVICE ambient";

	RestoreRun rr;
	Restored tree;
	json index;
	ASSERT_TRUE(dump_kill_restore(wl, tmp / "img", rr, tree, index));
	const json& creds = only_process(index).at("creds");
	EXPECT_EQ(creds.at("cap_ambient").get<uint64_t>(), 1u << 10);
	uint64_t dropped = (1ull << 13) | (1ull << 22) | (1ull << 27);  // CAP_NET_RAW, CAP_SYS_BOOT, CAP_MKNOD
	EXPECT_EQ(creds.at("cap_bset").get<uint64_t>() & dropped, 0u);
	EXPECT_EQ(thread_creds(pid), before) << "ids, groups and capabilities of every thread";
	EXPECT_EQ(verify_restored(rr, tree, pid), "PASS");
}

// exe, cwd, root and the paths of mapped files, built in BPF by walking dentries and mounts: the cwd is on a tmpfs
// mounted below /tmp (a mount crossing), a file is mapped from there, and a memfd and MAP_SHARED anonymous memory
// are mapped (pseudo files, named by their filesystem). The image must name them as /proc does, and the restored
// process must find its cwd and the bytes of every mapping again.
TEST(RestoreState, PathsOfMappedFilesAndCwdAcrossMounts)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	TmpfsMount mnt("size=4m");
	ASSERT_TRUE(mnt.ok()) << mnt.error();
	fs::create_directories(mnt.path() / "sub");
	Workload wl;
	ASSERT_TRUE(wl.start("mapped_paths", {"--dir", (mnt.path() / "sub").string()})) << wl.error();
	const json ready = wl.ready();
	pid_t pid = wl.pid();
	std::string self = "/proc/" + std::to_string(pid);
	auto maps = read_maps(pid);
	std::string exe = fs::read_symlink(self + "/exe").string(), cwd = fs::read_symlink(self + "/cwd").string();
	std::string root = fs::read_symlink(self + "/root").string();
	ASSERT_EQ(cwd, ready.at("cwd").get<std::string>());

	RestoreRun rr;
	Restored tree;
	json index;
	ASSERT_TRUE(dump_kill_restore(wl, tmp / "img", rr, tree, index));
	const json& p = only_process(index);
	EXPECT_EQ(p.at("exe").get<std::string>(), exe);
	EXPECT_EQ(p.at("cwd").get<std::string>(), cwd);
	EXPECT_EQ(p.at("root").get<std::string>(), root);
	std::map<uint64_t, std::string> image_paths;
	for (const json& v : p.at("vmas"))
		image_paths[v.at("start").get<uint64_t>()] = v.at("path").get<std::string>();
	size_t compared = 0;
	for (const MapsEntry& m : maps) {
		if (m.path == "[vsyscall]")
			continue;
		ASSERT_TRUE(image_paths.count(m.start)) << "vma " << std::hex << m.start << " " << m.path;
		EXPECT_EQ(image_paths[m.start], m.path) << "vma " << std::hex << m.start;
		compared++;
	}
	EXPECT_EQ(compared, image_paths.size());
	EXPECT_EQ(image_paths[ready.at("file_addr").get<uint64_t>()], cwd + "/data");
	EXPECT_EQ(image_paths[ready.at("memfd_addr").get<uint64_t>()], "/memfd:wl-mapped-paths (deleted)");
	EXPECT_EQ(image_paths[ready.at("shm_addr").get<uint64_t>()], "/dev/zero (deleted)");

	EXPECT_EQ(fs::read_symlink(self + "/cwd").string(), cwd) << "the restored process's cwd";
	EXPECT_EQ(verify_restored(rr, tree, pid), "PASS");
}

}  // namespace
}  // namespace e2e
