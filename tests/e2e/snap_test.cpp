// Acceptance tests for `bpfckpt snap CGROUP` (issue #4): a whole cgroup v2 subtree is frozen by the kernel, saved,
// then thawed (-R) or killed; `restore` puts every process back into its cgroup (the saved path or --cgroup); each
// bad input gets its own exit code and one line; a cgroup bpfckpt froze is never left frozen.
//
// Each test makes its own cgroup under the cgroup2 mount (found as bpfckpt finds it, from /proc/self/mountinfo) with
// a unique name; a guard thaws it, kills what is left in it and removes it on every path. Workloads join their
// cgroup before exec (the harness writes to cgroup.procs in the child), so everything they fork is born there.
//
// Restored workloads are driven as in restore_test.cpp (restore_run.h): their stdout was a pipe to this test,
// outside the image, restore hands it its own stdout, and each restored root prints its verdict there on SIGUSR1.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <map>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "common/cgroup.h"
#include "common/exit_codes.h"
#include "harness.h"
#include "restore_run.h"
#include "test_cgroup.h"

namespace e2e {
namespace {

using bpfckpt::ExitCode;

int code(ExitCode c) { return int(c); }

// The cgroup v2 path of a process as /proc shows it ("0::/path"), "" when it is gone.
std::string cgroup_of(pid_t pid)
{
	std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/cgroup").value_or(""));
	for (std::string line; std::getline(in, line);)
		if (line.rfind("0::", 0) == 0)
			return line.substr(3);
	return "";
}


// --- starting workloads in cgroups ----------------------------------------------------------------------------------

struct Spec {
	std::string workload;
	std::vector<std::string> args;
	std::string rel;  // the child cgroup it starts in, "" for the test's cgroup itself
	int copies = 1;
	bool new_session = false;
};

// Workloads started in a test's cgroups, with every PID they said they have and the cgroup each must be in.
struct Fleet {
	std::vector<std::unique_ptr<Workload>> workloads;
	std::vector<pid_t> roots;                // the started processes: each gets SIGUSR1 and prints a verdict
	std::map<pid_t, std::string> rel_of;     // every process of every workload -> its cgroup, relative
	std::map<pid_t, std::string> name_of;    // every root -> its workload, for messages

	std::vector<pid_t> pids() const
	{
		std::vector<pid_t> out;
		for (auto& [p, rel] : rel_of)
			out.push_back(p);
		return out;
	}
};

// The processes a READY line names: "pids" (tree), else "pid" and "child_pid" (dump_state).
std::vector<pid_t> ready_pids(const json& ready)
{
	if (ready.contains("pids"))
		return ready.at("pids").get<std::vector<pid_t>>();
	std::vector<pid_t> out{ready.at("pid").get<pid_t>()};
	if (ready.contains("child_pid"))
		out.push_back(ready.at("child_pid").get<pid_t>());
	return out;
}

testing::AssertionResult start_fleet(const TestCgroup& cg, const std::vector<Spec>& specs, const fs::path& scratch,
				     Fleet& fleet)
{
	for (const Spec& s : specs) {
		if (!cg.make(s.rel))
			return testing::AssertionFailure() << "cannot create cgroup " << cg.dir(s.rel);
		for (int i = 0; i < s.copies; i++) {
			auto wl = std::make_unique<Workload>();
			std::vector<std::string> args = s.args;
			if (s.workload == "tree" || s.workload == "dump_state")
				args.insert(args.end(), {"--dir", scratch.string()});
			if (!wl->start(s.workload, args, {.cgroup_dir = cg.dir(s.rel), .new_session = s.new_session}))
				return testing::AssertionFailure() << wl->error();
			fleet.roots.push_back(wl->pid());
			fleet.name_of[wl->pid()] = s.workload;
			for (pid_t p : ready_pids(wl->ready()))
				fleet.rel_of[p] = s.rel;
			fleet.workloads.push_back(std::move(wl));
		}
	}
	for (auto& [p, rel] : fleet.rel_of)
		if (cgroup_of(p) != cg.path(rel))
			return testing::AssertionFailure() << "pid " << p << " is in " << cgroup_of(p) << ", not "
							   << cg.path(rel) << " (the harness did not move it)";
	return testing::AssertionSuccess();
}

// 50 processes in three cgroups: six trees (5 processes each, sessions, groups, pipes with bytes in flight, files
// at offsets, a shared file), five dump_state (2 each: memory, files, a pipe, a thread), five counter_mem and five
// threads4 (4 worker threads on one mutex). The trees lead sessions of their own, as a service's main process does:
// a tree left in the test's session would fail its own getsid() check after `restore --pidns`, because a session
// whose leader is outside the new PID namespace has no number there (getsid() returns 0).
const std::vector<Spec> kFifty = {
	{"tree", {}, "", 2, true},
	{"dump_state", {"--mem-mib", "2"}, "", 2},
	{"threads4", {}, "", 2},
	{"tree", {}, "a", 2, true},
	{"dump_state", {"--mem-mib", "2"}, "a", 2},
	{"counter_mem", {"--mem-mib", "2"}, "a", 3},
	{"tree", {}, "b/c", 2, true},
	{"dump_state", {"--mem-mib", "2"}, "b/c", 1},
	{"counter_mem", {"--mem-mib", "2"}, "b/c", 2},
	{"threads4", {}, "b/c", 3},
};

// --- running bpfckpt ------------------------------------------------------------------------------------------------

std::vector<std::string> snap_args(const TestCgroup& cg, const fs::path& img, std::vector<std::string> extra = {})
{
	std::vector<std::string> a{"snap", cg.dir(), "-D", img.string()};
	a.insert(a.end(), extra.begin(), extra.end());
	return a;
}

// The last line of stdout that parses as a JSON object (the --json summary).
std::optional<json> last_json(const std::string& out)
{
	std::optional<json> found;
	std::istringstream in(out);
	for (std::string line; std::getline(in, line);) {
		json j = json::parse(line, nullptr, false);
		if (!j.is_discarded() && j.is_object())
			found = j;
	}
	return found;
}

// Each saved PID as our namespace numbers it after a restore: the same PID, or under --pidns, the process with that
// PID in the one child PID namespace that holds all of them; `init` is that namespace's PID 1.
struct Placed {
	std::map<pid_t, pid_t> outer;
	pid_t init = 0;

	std::vector<pid_t> all() const
	{
		std::vector<pid_t> out{};
		for (auto& [saved, ours] : outer)
			out.push_back(ours);
		if (init > 0)
			out.push_back(init);
		return out;
	}
};

Placed same_pids(const std::vector<pid_t>& saved)
{
	Placed p;
	for (pid_t s : saved)
		p.outer[s] = s;
	return p;
}

// pid namespace -> (inner pid -> our pid), from NSpid of every process one level below us.
std::map<std::string, std::map<pid_t, pid_t>> child_namespaces()
{
	std::map<std::string, std::map<pid_t, pid_t>> by_ns;
	for (const std::string& name : list_dir("/proc")) {
		if (name.find_first_not_of("0123456789") != std::string::npos)
			continue;
		pid_t p = std::stoi(name);
		std::istringstream in(status_field(p, "NSpid").value_or(""));
		std::vector<pid_t> nspid;
		for (pid_t x; in >> x;)
			nspid.push_back(x);
		std::error_code ec;
		auto ns = fs::read_symlink("/proc/" + name + "/ns/pid", ec);
		if (nspid.size() == 2 && !ec)
			by_ns[ns.string()][nspid.back()] = p;
	}
	return by_ns;
}

testing::AssertionResult in_child_pidns(const std::vector<pid_t>& saved, Placed& placed)
{
	std::vector<std::map<pid_t, pid_t>> found;
	for (auto& [ns, inner] : child_namespaces())
		if (std::all_of(saved.begin(), saved.end(), [&](pid_t s) { return inner.count(s); }))
			found.push_back(inner);
	if (found.size() != 1)
		return testing::AssertionFailure() << found.size() << " child PID namespaces hold all " << saved.size()
						   << " saved PIDs (want 1)";
	for (pid_t s : saved)
		placed.outer[s] = found[0].at(s);
	placed.init = found[0].count(1) ? found[0].at(1) : 0;
	return testing::AssertionSuccess();
}

// `bpfckpt restore -D img -d EXTRA`, then pidfds on what came back (the guard kills it on every path).
testing::AssertionResult restore_fleet(RestoreRun& rr, Restored& tree, const fs::path& img, const Fleet& fleet,
				       const std::vector<std::string>& extra, bool pidns, Placed& placed)
{
	std::vector<std::string> args{"restore", "-D", img.string(), "-d"};
	args.insert(args.end(), extra.begin(), extra.end());
	if (!rr.start(args))
		return testing::AssertionFailure() << "cannot start bpfckpt restore";
	RunResult r = rr.finish();
	if (r.exit_code != code(ExitCode::ok))
		return testing::AssertionFailure() << "restore -d " << img << ": " << r.describe();
	if (!pidns)
		placed = same_pids(fleet.pids());
	else if (auto found = in_child_pidns(fleet.pids(), placed); !found)
		return found;
	if (!tree.adopt(placed.all()))
		return testing::AssertionFailure() << tree.error() << "\nrestore said:\n" << r.describe();
	return testing::AssertionSuccess();
}

// Every restored process is in the cgroup it was saved in, below `base` (the snapped cgroup, or --cgroup).
void expect_in_cgroups(const Placed& placed, const Fleet& fleet, const std::string& base)
{
	for (auto& [saved, rel] : fleet.rel_of)
		EXPECT_EQ(cgroup_of(placed.outer.at(saved)), rel.empty() ? base : base + "/" + rel)
			<< "saved pid " << saved << " (here " << placed.outer.at(saved) << ")";
}

// Each restored root verifies itself (its children fold their verdicts into its line).
void expect_all_pass(RestoreRun& rr, Restored& tree, const Placed& placed, const Fleet& fleet)
{
	for (pid_t root : fleet.roots)
		EXPECT_EQ(verify_restored(rr, tree, placed.outer.at(root)), "PASS")
			<< fleet.name_of.at(root) << " saved as pid " << root;
}

// The image of a snap: of the cgroup, with every process of the fleet in its cgroup, and the cgroup tree.
void expect_cgroup_image(const fs::path& img, const TestCgroup& cg, const Fleet& fleet)
{
	auto index = load_index(img);
	ASSERT_TRUE(index) << "no index.json in " << img;
	EXPECT_EQ(index->at("target").at("kind"), "cgroup");
	EXPECT_EQ(index->at("target").at("cgroup"), cg.path());
	std::map<pid_t, std::string> saved;
	for (auto& p : index->at("processes"))
		saved[p.at("pid").get<pid_t>()] = p.at("cgroup").get<std::string>();
	EXPECT_EQ(saved, fleet.rel_of) << "the image's processes and their cgroups";
	auto cgroups = index->at("cgroups").get<std::vector<std::string>>();
	std::sort(cgroups.begin(), cgroups.end());
	EXPECT_EQ(cgroups, cg.tree()) << "the image's cgroup tree";
	EXPECT_TRUE(validates(img));
}

// The files the workloads keep in `scratch`: a restore reopens them by path and does not save their contents (like
// CRIU), and a verify appends to some; put back between two restores of one image.
std::map<fs::path, std::string> save_files(const fs::path& scratch)
{
	std::map<fs::path, std::string> out;
	for (const std::string& name : list_dir(scratch))
		if (fs::is_regular_file(scratch / name))
			out[scratch / name] = read_file(scratch / name).value_or("");
	return out;
}

void put_back(const std::map<fs::path, std::string>& files)
{
	for (auto& [p, bytes] : files) {
		std::ofstream o(p, std::ios::binary | std::ios::trunc);  // the same inode: truncated and rewritten
		o << bytes;
	}
}

// --- 1. fifty processes ----------------------------------------------------------------------------------------------

TEST(Snap, FiftyProcessesLeaveRunning)
{
	REQUIRE_ROOT_OR_SKIP();
	TestCgroup cg("fifty-r");
	ASSERT_CGROUP(cg);
	TempDir tmp;
	Fleet fleet;
	ASSERT_TRUE(start_fleet(cg, kFifty, tmp.path(), fleet));
	ASSERT_EQ(fleet.rel_of.size(), 50u);
	std::this_thread::sleep_for(200ms);  // the counters and threads run a while

	fs::path img = tmp / "img";
	RunResult r = run_bpfckpt(snap_args(cg, img, {"-R", "--stats", "--json"}));
	ASSERT_EQ(r.exit_code, code(ExitCode::ok)) << r.describe();
	auto stats = last_json(r.out);
	ASSERT_TRUE(stats) << "no JSON summary: " << r.describe();
	EXPECT_GT(stats->value("frozen_time", 0), 0) << r.out;
	EXPECT_GT(stats->value("freezing_time", 0), 0) << r.out;
	EXPECT_EQ(stats->value("processes", 0), 50) << r.out;
	EXPECT_EQ(stats->value("left_running", false), true) << r.out;
	EXPECT_EQ(cg.frozen_ones(), "") << "left frozen";

	for (pid_t p : fleet.pids()) {
		EXPECT_TRUE(running_untraced(p));
		EXPECT_EQ(cgroup_of(p), cg.path(fleet.rel_of.at(p))) << "pid " << p << " moved";
	}
	expect_cgroup_image(img, cg, fleet);
	std::this_thread::sleep_for(200ms);  // and run on a while after the snap before they check themselves
	for (auto& wl : fleet.workloads)
		EXPECT_EQ(wl->verify(), "PASS") << fleet.name_of.at(wl->pid()) << " pid " << wl->pid();
	EXPECT_EQ(cg.frozen_ones(), "");
}

TEST(Snap, FiftyProcessesKillAndRestore)
{
	REQUIRE_ROOT_OR_SKIP();
	TestCgroup cg("fifty-k");
	ASSERT_CGROUP(cg);
	TempDir tmp;
	Fleet fleet;
	ASSERT_TRUE(start_fleet(cg, kFifty, tmp.path(), fleet));
	std::this_thread::sleep_for(200ms);

	fs::path img = tmp / "img";
	RunResult r = run_bpfckpt(snap_args(cg, img, {"--stats"}));
	ASSERT_EQ(r.exit_code, code(ExitCode::ok)) << r.describe();
	EXPECT_NE(r.out.find("frozen_time:"), std::string::npos) << r.out;
	EXPECT_FALSE(cg.populated()) << "the snap did not kill everything in the cgroup";
	EXPECT_EQ(cg.frozen_ones(), "") << "left frozen";
	expect_cgroup_image(img, cg, fleet);
	for (auto& wl : fleet.workloads)
		wl->kill_all();
	// A plain restore needs the saved PIDs free: their zombies are ours to reap.
	ASSERT_TRUE(all_gone(fleet.pids(), 10s));
	auto files = save_files(tmp.path());

	{
		SCOPED_TRACE("restore -d (the saved PIDs)");
		RestoreRun rr;
		Restored tree;
		Placed placed;
		ASSERT_TRUE(restore_fleet(rr, tree, img, fleet, {}, false, placed));
		expect_in_cgroups(placed, fleet, cg.path());
		expect_all_pass(rr, tree, placed, fleet);
	}
	ASSERT_TRUE(all_gone(fleet.pids(), 10s)) << "the restored processes did not all exit after their verdicts";
	put_back(files);

	{
		SCOPED_TRACE("restore -d --pidns");
		RestoreRun rr;
		Restored tree;
		Placed placed;
		ASSERT_TRUE(restore_fleet(rr, tree, img, fleet, {"--pidns"}, true, placed));
		expect_in_cgroups(placed, fleet, cg.path());
		expect_all_pass(rr, tree, placed, fleet);
	}
	EXPECT_EQ(cg.frozen_ones(), "");
}

// --- 2. a nested tree comes back with its shape, under a new path -------------------------------------------------

TEST(Snap, NestedCgroupsRestoreToNewPath)
{
	REQUIRE_ROOT_OR_SKIP();
	TestCgroup cg("nested");
	TestCgroup copy("nested-copy", false);  // where the restore recreates the tree: removed with it
	ASSERT_CGROUP(cg);
	ASSERT_CGROUP(copy);
	TempDir tmp;
	Fleet fleet;
	ASSERT_TRUE(start_fleet(cg,
				{{"threads4", {}, "", 1},
				 {"tree", {}, "left", 1, true},
				 {"counter_mem", {"--mem-mib", "4"}, "left", 1},
				 {"dump_state", {"--mem-mib", "4"}, "right", 1},
				 {"threads4", {}, "right", 1}},
				tmp.path(), fleet));

	fs::path img = tmp / "img";
	RunResult r = run_bpfckpt(snap_args(cg, img));
	ASSERT_EQ(r.exit_code, code(ExitCode::ok)) << r.describe();
	expect_cgroup_image(img, cg, fleet);
	for (auto& wl : fleet.workloads)
		wl->kill_all();
	ASSERT_TRUE(all_gone(fleet.pids(), 10s));

	// --cgroup relative to the mount (the saved path was absolute).
	RestoreRun rr;
	Restored tree;
	Placed placed;
	ASSERT_TRUE(restore_fleet(rr, tree, img, fleet, {"--pidns", "--cgroup", copy.path().substr(1)}, true, placed));
	EXPECT_EQ(copy.tree(), cg.tree()) << "the new cgroup tree has another shape";
	expect_in_cgroups(placed, fleet, copy.path());
	expect_all_pass(rr, tree, placed, fleet);
	EXPECT_EQ(cg.frozen_ones(), "");
	EXPECT_EQ(copy.frozen_ones(), "");
}

// --- 3. bad input ----------------------------------------------------------------------------------------------------

// A refused snap: the exit code, one line on stderr naming `what`, and no image.
void expect_refused(const RunResult& r, ExitCode want, const std::string& what, const fs::path& img)
{
	EXPECT_EQ(r.exit_code, code(want)) << r.describe();
	EXPECT_EQ(count_lines(r.err), 1u) << r.err;
	EXPECT_NE(r.err.find(what), std::string::npos) << "stderr does not say " << what << ":\n" << r.err;
	EXPECT_TRUE(find_index_files(img).empty()) << "a refused snap left an image";
}

TEST(SnapBadInput, NoSuchCgroup)
{
	REQUIRE_ROOT_OR_SKIP();
	TestCgroup cg("missing", false);
	ASSERT_CGROUP(cg);
	TempDir tmp;
	RunResult r = run_bpfckpt(snap_args(cg, tmp / "img"));
	expect_refused(r, ExitCode::no_target, cg.path(), tmp / "img");
	EXPECT_NE(r.err.find("no such cgroup"), std::string::npos) << r.err;
}

// The first cgroup v1 hierarchy /proc/self/mountinfo shows, if any.
std::optional<std::string> v1_hierarchy()
{
	std::istringstream in(read_file("/proc/self/mountinfo").value_or(""));
	for (std::string line; std::getline(in, line);) {
		auto dash = line.find(" - ");
		std::istringstream head(line.substr(0, dash)), tail(dash == std::string::npos ? "" : line.substr(dash + 3));
		std::string id, parent, devno, root, mountpoint, fstype;
		head >> id >> parent >> devno >> root >> mountpoint;
		tail >> fstype;
		if (fstype == "cgroup")
			return mountpoint;
	}
	return std::nullopt;
}

TEST(SnapBadInput, CgroupV1)
{
	REQUIRE_ROOT_OR_SKIP();
	auto v1 = v1_hierarchy();
	if (!v1)
		SKIP_OR_FAIL("no cgroup v1 hierarchy is mounted");
	TempDir tmp;
	RunResult r = run_bpfckpt({"snap", *v1, "-D", (tmp / "img").string()});
	expect_refused(r, ExitCode::unsupported, "v1", tmp / "img");
}

TEST(SnapBadInput, EmptyCgroup)
{
	REQUIRE_ROOT_OR_SKIP();
	TestCgroup cg("empty");
	ASSERT_CGROUP(cg);
	ASSERT_TRUE(cg.make("child"));  // an empty child does not make it populated
	TempDir tmp;
	RunResult r = run_bpfckpt(snap_args(cg, tmp / "img", {"-R"}));
	expect_refused(r, ExitCode::no_target, "empty", tmp / "img");
	EXPECT_EQ(cg.frozen_ones(), "");
}

TEST(SnapBadInput, RootCgroup)
{
	REQUIRE_ROOT_OR_SKIP();
	auto mount = bpfckpt::cgroup::v2_mount();
	ASSERT_TRUE(mount) << mount.error().describe();
	TempDir tmp;
	RunResult r = run_bpfckpt({"snap", *mount, "-D", (tmp / "img").string(), "-R"});
	expect_refused(r, ExitCode::no_target, "root cgroup", tmp / "img");
}

// bpfckpt in the cgroup it is asked to snap, or below it: freezing it would freeze bpfckpt itself.
TEST(SnapBadInput, CgroupHoldingBpfckpt)
{
	REQUIRE_ROOT_OR_SKIP();
	TestCgroup cg("self");
	ASSERT_CGROUP(cg);
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(wl.start("threads4", {}, {.cgroup_dir = cg.dir()})) << wl.error();
	ASSERT_TRUE(cg.make("inner"));
	for (const std::string& rel : {std::string(), std::string("inner")}) {
		SCOPED_TRACE("bpfckpt in " + cg.path(rel));
		RunResult r = run_bpfckpt(snap_args(cg, tmp / "img", {"-R"}), {.cgroup_dir = cg.dir(rel)});
		expect_refused(r, ExitCode::no_target, "bpfckpt itself", tmp / "img");
		EXPECT_EQ(cg.frozen_ones(), "");
	}
	EXPECT_TRUE(running_untraced(wl.pid()));
	EXPECT_EQ(wl.verify(), "PASS");
}

// Waits for the kernel's `frozen 1` after a write to cgroup.freeze.
testing::AssertionResult freeze_by_hand(const std::string& dir)
{
	if (!write_control(dir + "/cgroup.freeze", "1"))
		return testing::AssertionFailure() << "cannot write cgroup.freeze of " << dir;
	auto deadline = Clock::now() + 5s;
	while (events_key(dir, "frozen") != 1) {
		if (Clock::now() > deadline)
			return testing::AssertionFailure() << dir << " not frozen after 5 s";
		std::this_thread::sleep_for(2ms);
	}
	return testing::AssertionSuccess();
}

// Someone else froze it: refused, and left as they left it (frozen).
TEST(SnapBadInput, FrozenBySomeoneElse)
{
	REQUIRE_ROOT_OR_SKIP();
	TestCgroup cg("frozen");
	ASSERT_CGROUP(cg);
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(wl.start("threads4", {}, {.cgroup_dir = cg.dir()})) << wl.error();
	ASSERT_TRUE(freeze_by_hand(cg.dir()));

	RunResult r = run_bpfckpt(snap_args(cg, tmp / "img", {"-R"}));
	expect_refused(r, ExitCode::target_busy, "already frozen", tmp / "img");
	EXPECT_EQ(trim_nl(read_file(cg.dir() + "/cgroup.freeze").value_or("?")), "1") << "our freeze was undone";
	EXPECT_EQ(events_key(cg.dir(), "frozen"), 1);

	ASSERT_TRUE(write_control(cg.dir() + "/cgroup.freeze", "0"));
	EXPECT_EQ(wl.verify(), "PASS");
	EXPECT_EQ(cg.frozen_ones(), "");
}

// A child cgroup someone else froze: the snap goes through and leaves it frozen as it was. An ancestor someone else
// froze: the cgroup cannot be thawed by the snap, so it is refused.
TEST(SnapBadInput, FrozenChildOrAncestor)
{
	REQUIRE_ROOT_OR_SKIP();
	TestCgroup cg("frozen-rel");
	ASSERT_CGROUP(cg);
	ASSERT_TRUE(cg.make("kid"));
	TempDir tmp;
	Workload parent, kid;
	ASSERT_TRUE(parent.start("threads4", {}, {.cgroup_dir = cg.dir()})) << parent.error();
	ASSERT_TRUE(kid.start("threads4", {}, {.cgroup_dir = cg.dir("kid")})) << kid.error();
	ASSERT_TRUE(freeze_by_hand(cg.dir("kid")));

	RunResult r = run_bpfckpt(snap_args(cg, tmp / "img", {"-R"}));
	ASSERT_EQ(r.exit_code, code(ExitCode::ok)) << r.describe();
	auto index = load_index(tmp / "img");
	ASSERT_TRUE(index);
	EXPECT_EQ(index->at("processes").size(), 2u);
	EXPECT_EQ(trim_nl(read_file(cg.dir("kid") + "/cgroup.freeze").value_or("?")), "1") << "their freeze was undone";
	EXPECT_EQ(events_key(cg.dir("kid"), "frozen"), 1);
	EXPECT_EQ(trim_nl(read_file(cg.dir() + "/cgroup.freeze").value_or("?")), "0");
	EXPECT_TRUE(running_untraced(parent.pid()));

	ASSERT_TRUE(write_control(cg.dir("kid") + "/cgroup.freeze", "0"));
	ASSERT_TRUE(freeze_by_hand(cg.dir()));
	fs::path img2 = tmp / "img2";
	RunResult below = run_bpfckpt({"snap", cg.dir("kid"), "-D", img2.string(), "-R"});
	expect_refused(below, ExitCode::target_busy, "frozen by an ancestor", img2);
	EXPECT_EQ(trim_nl(read_file(cg.dir() + "/cgroup.freeze").value_or("?")), "1") << "their freeze was undone";

	ASSERT_TRUE(write_control(cg.dir() + "/cgroup.freeze", "0"));
	EXPECT_EQ(cg.frozen_ones(), "");
	EXPECT_EQ(parent.verify(), "PASS");
	EXPECT_EQ(kid.verify(), "PASS");
}

// What a bpfckpt killed while holding a cgroup frozen leaves: its freeze, and its marker naming it (format of
// src/dump/cgroup_freeze.cpp: "<pid> <cgroup path>" in /run/bpfckpt/frozen/<cgroup id>), with a pid that is dead.
class LeftFreeze {
public:
	explicit LeftFreeze(const TestCgroup& cg)
	{
		struct stat st;
		if (stat(cg.dir().c_str(), &st) != 0)
			return;
		pid_t child = fork();
		if (child == 0)
			_exit(0);
		int ws;
		waitpid(child, &ws, 0);
		dead_pid_ = child;
		marker_ = fs::path("/run/bpfckpt/frozen") / std::to_string(st.st_ino);
		std::error_code ec;
		fs::create_directories(marker_.parent_path(), ec);
		std::ofstream(marker_) << dead_pid_ << " " << cg.path() << "\n";
		made_ = fs::exists(marker_) && freeze_by_hand(cg.dir());
	}
	~LeftFreeze()
	{
		std::error_code ec;
		fs::remove(marker_, ec);
	}
	LeftFreeze(const LeftFreeze&) = delete;
	LeftFreeze& operator=(const LeftFreeze&) = delete;

	bool made() const { return made_; }
	pid_t dead_pid() const { return dead_pid_; }
	bool marker_exists() const { return fs::exists(marker_); }

private:
	fs::path marker_;
	pid_t dead_pid_ = 0;
	bool made_ = false;
};

TEST(SnapBadInput, ThawUndoesAFreezeLeftByAKilledSnap)
{
	REQUIRE_ROOT_OR_SKIP();
	TestCgroup cg("left-thaw");
	ASSERT_CGROUP(cg);
	Workload wl;
	ASSERT_TRUE(wl.start("threads4", {}, {.cgroup_dir = cg.dir()})) << wl.error();
	LeftFreeze left(cg);
	ASSERT_TRUE(left.made());

	RunResult r = run_bpfckpt({"thaw", cg.dir()});
	EXPECT_EQ(r.exit_code, code(ExitCode::ok)) << r.describe();
	EXPECT_NE(r.out.find("thawed"), std::string::npos) << r.out;
	EXPECT_NE(r.out.find(std::to_string(left.dead_pid())), std::string::npos) << "does not name the dead bpfckpt:\n"
										   << r.out;
	EXPECT_EQ(cg.frozen_ones(), "");
	EXPECT_FALSE(left.marker_exists()) << "thaw left the marker";

	RunResult again = run_bpfckpt({"thaw", cg.path()});  // relative to the mount this time
	EXPECT_EQ(again.exit_code, code(ExitCode::ok)) << again.describe();
	EXPECT_NE(again.out.find("was not frozen"), std::string::npos) << again.out;
	EXPECT_EQ(wl.verify(), "PASS");
}

TEST(SnapBadInput, SnapTakesOverAFreezeLeftByAKilledSnap)
{
	REQUIRE_ROOT_OR_SKIP();
	TestCgroup cg("left-snap");
	ASSERT_CGROUP(cg);
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(wl.start("threads4", {}, {.cgroup_dir = cg.dir()})) << wl.error();
	LeftFreeze left(cg);
	ASSERT_TRUE(left.made());

	fs::path img = tmp / "img";
	RunResult r = run_bpfckpt(snap_args(cg, img, {"-R"}));
	EXPECT_EQ(r.exit_code, code(ExitCode::ok)) << r.describe();
	EXPECT_NE(r.err.find(std::to_string(left.dead_pid())), std::string::npos)
		<< "no warning naming the dead bpfckpt:\n" << r.err;
	EXPECT_EQ(cg.frozen_ones(), "");
	EXPECT_FALSE(left.marker_exists()) << "the snap left a marker";
	EXPECT_TRUE(validates(img));
	EXPECT_TRUE(running_untraced(wl.pid()));
	EXPECT_EQ(wl.verify(), "PASS");
}

// A forker's children are born, and die, while the cgroup is being frozen and while its tasks are being seized.
TEST(SnapBadInput, ForksDuringTheFreeze)
{
	REQUIRE_ROOT_OR_SKIP();
	TestCgroup cg("forker");
	ASSERT_CGROUP(cg);
	ASSERT_TRUE(cg.make("sub"));
	TempDir tmp;
	Workload top, sub;
	ASSERT_TRUE(top.start("forker", {}, {.cgroup_dir = cg.dir()})) << top.error();
	ASSERT_TRUE(sub.start("forker", {}, {.cgroup_dir = cg.dir("sub")})) << sub.error();
	std::vector<fs::path> images;
	for (int i = 0; i < 5; i++) {
		SCOPED_TRACE("snap -R #" + std::to_string(i));
		images.push_back(tmp / ("img" + std::to_string(i)));
		RunResult r = run_bpfckpt(snap_args(cg, images.back(), {"-R"}));
		ASSERT_EQ(r.exit_code, code(ExitCode::ok)) << r.describe();
		EXPECT_EQ(cg.frozen_ones(), "");
		EXPECT_TRUE(running_untraced(top.pid()));
		EXPECT_TRUE(running_untraced(sub.pid()));
	}
	EXPECT_TRUE(validates(images));
	EXPECT_EQ(top.verify(), "PASS");
	EXPECT_EQ(sub.verify(), "PASS");
}

// The default ending kills with cgroup.kill: a forker's children that were born after the freeze die too.
TEST(SnapBadInput, ForkerKilledWithEverythingItForked)
{
	REQUIRE_ROOT_OR_SKIP();
	TestCgroup cg("forker-kill");
	ASSERT_CGROUP(cg);
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(wl.start("forker", {}, {.cgroup_dir = cg.dir()})) << wl.error();
	fs::path img = tmp / "img";
	RunResult r = run_bpfckpt(snap_args(cg, img));
	ASSERT_EQ(r.exit_code, code(ExitCode::ok)) << r.describe();
	EXPECT_TRUE(validates(img));
	EXPECT_FALSE(cg.populated()) << "something in the cgroup outlived the snap";
	EXPECT_EQ(cg.frozen_ones(), "");
	EXPECT_TRUE(wl.exited(5s));
}

// A process that joins the cgroup while a snap holds its tasks (the cgroup is thawed again by then) is not in the
// image and does not break it; with the default ending, cgroup.kill takes it too. The stall holds the snap just
// before it lists what it holds, the moment a joiner used to be taken in unseized.
TEST(SnapBadInput, ProcessJoinsDuringTheSnap)
{
	REQUIRE_ROOT_OR_SKIP();
	TestCgroup cg("joiner");
	ASSERT_CGROUP(cg);
	TempDir tmp;
	Workload first, joiner;
	ASSERT_TRUE(first.start("threads4", {}, {.cgroup_dir = cg.dir()})) << first.error();
	fs::path img = tmp / "img";
	Command snap;
	ASSERT_TRUE(snap.start(
		[&] { auto a = snap_args(cg, img); a.insert(a.begin(), bpfckpt_bin()); return a; }(),
		{.env = {{"BPFCKPT_TEST_STALL_HELD_MS", "1500"}}}));
	// Seized by the snap: its tasks are in ptrace stops.
	auto deadline = Clock::now() + 10s;
	while (status_field(first.pid(), "TracerPid").value_or("0") == "0" && Clock::now() < deadline)
		std::this_thread::sleep_for(2ms);
	ASSERT_NE(status_field(first.pid(), "TracerPid").value_or("0"), "0") << "the snap never seized its target";
	ASSERT_TRUE(joiner.start("threads4", {}, {.cgroup_dir = cg.dir()})) << joiner.error();

	RunResult r = snap.finish();
	ASSERT_EQ(r.exit_code, code(ExitCode::ok)) << r.describe() << "(the process that joined is pid " << joiner.pid()
						  << ")";
	auto index = load_index(img);
	ASSERT_TRUE(index);
	ASSERT_EQ(index->at("processes").size(), 1u);
	EXPECT_EQ(index->at("processes")[0].at("pid").get<pid_t>(), first.pid());
	EXPECT_TRUE(validates(img));
	EXPECT_TRUE(joiner.exited(5s)) << "the process that joined during the snap survived cgroup.kill";
	EXPECT_FALSE(cg.populated());
	EXPECT_EQ(cg.frozen_ones(), "");
}

// SIGINT while the tasks are held: bpfckpt stops with "interrupted", no image that looks complete, all runs on.
TEST(SnapBadInput, InterruptedWhileFrozen)
{
	REQUIRE_ROOT_OR_SKIP();
	TestCgroup cg("sigint");
	ASSERT_CGROUP(cg);
	TempDir tmp;
	Fleet fleet;
	ASSERT_TRUE(start_fleet(cg, {{"tree", {}, "", 1}, {"threads4", {}, "sub", 1}}, tmp.path(), fleet));
	fs::path img = tmp / "img";
	Command snap;
	ASSERT_TRUE(snap.start(
		[&] { auto a = snap_args(cg, img, {"-R"}); a.insert(a.begin(), bpfckpt_bin()); return a; }(),
		{.env = {{"BPFCKPT_TEST_STALL_FROZEN_MS", "2000"}}}));
	pid_t root = fleet.roots.front();
	auto deadline = Clock::now() + 10s;
	while (status_field(root, "TracerPid").value_or("0") == "0" && Clock::now() < deadline)
		std::this_thread::sleep_for(2ms);
	ASSERT_NE(status_field(root, "TracerPid").value_or("0"), "0") << "the snap never seized its target";
	std::this_thread::sleep_for(100ms);
	ASSERT_EQ(kill(snap.pid(), SIGINT), 0);

	RunResult r = snap.finish();
	EXPECT_NE(r.exit_code, code(ExitCode::ok)) << r.describe();
	EXPECT_EQ(r.term_signal, 0) << "killed by the signal instead of stopping cleanly: " << r.describe();
	EXPECT_NE(r.err.find("interrupted"), std::string::npos) << r.err;
	EXPECT_TRUE(find_index_files(tmp.path()).empty()) << "an interrupted snap left an index.json";
	EXPECT_EQ(cg.frozen_ones(), "");
	for (pid_t p : fleet.pids())
		EXPECT_TRUE(running_untraced(p));
	for (auto& wl : fleet.workloads)
		EXPECT_EQ(wl->verify(), "PASS") << fleet.name_of.at(wl->pid());
}

}  // namespace
}  // namespace e2e
