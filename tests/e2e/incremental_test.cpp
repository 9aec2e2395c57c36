// Issue 5: write tracking (--track-mem), incremental dumps (--prev-images-dir), restore of a chain, and watch.
// The workload is tests/workloads/dirty_pages: 256 MiB that stay as they were, and 8 hot pages rewritten every 2 ms.
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <thread>

#include "harness.h"
#include "restore_run.h"

namespace e2e {
namespace {

constexpr uint64_t kPage = 4096;

// Pages an image saved itself (its own page runs), over all processes.
uint64_t own_pages(const json& index)
{
	uint64_t n = 0;
	for (const auto& p : index.at("processes"))
		for (const auto& v : p.at("vmas"))
			for (const auto& r : v.at("pages"))
				n += r.at("npages").get<uint64_t>();
	return n;
}

std::optional<json> read_index(const fs::path& img)
{
	std::ifstream in(img / "index.json");
	if (!in)
		return std::nullopt;
	return json::parse(in, nullptr, false);
}

bool tracked(pid_t pid) { return fs::exists("/run/bpfckpt/track/" + std::to_string(pid)); }

// The keeper named by pid's tracking record, 0 when there is none.
pid_t keeper_of(pid_t pid)
{
	std::ifstream in("/run/bpfckpt/track/" + std::to_string(pid));
	long p, start, mm, keeper = 0;
	in >> p >> start >> mm >> keeper;
	return pid_t(keeper);
}

RunResult dump(pid_t pid, const fs::path& dir, std::vector<std::string> extra)
{
	std::vector<std::string> args{"dump", "-t", std::to_string(pid), "-D", dir.string(), "--json"};
	args.insert(args.end(), extra.begin(), extra.end());
	return run_bpfckpt(args);
}

class Incremental : public testing::Test {
protected:
	void SetUp() override { REQUIRE_ROOT_OR_SKIP(); }
	TempDir tmp_;
};

// A --track-mem dump, then two incremental ones: each holds only the pages written since (a few, not 65536);
// the last, restored after the workload is killed, brings back every page of the moment it was taken.
TEST_F(Incremental, ChainHoldsOnlyWrittenPagesAndRestoresExactly)
{
	Workload wl;
	ASSERT_TRUE(wl.start("dirty_pages", {"--mem-mib", "256", "--hot", "8"})) << wl.error();
	pid_t pid = wl.pid();
	fs::path full = tmp_ / "full", inc1 = tmp_ / "inc1", inc2 = tmp_ / "inc2";

	RunResult r = dump(pid, full, {"-R", "--track-mem"});
	ASSERT_EQ(r.exit_code, 0) << r.describe();
	EXPECT_TRUE(tracked(pid)) << "--track-mem left no tracking record";
	auto fi = read_index(full);
	ASSERT_TRUE(fi);
	EXPECT_GE(own_pages(*fi), 65536u) << "the full image lacks the 256 MiB";

	std::this_thread::sleep_for(200ms);
	r = dump(pid, inc1, {"-R", "--track-mem", "--prev-images-dir", full.string()});
	ASSERT_EQ(r.exit_code, 0) << r.describe();
	auto i1 = read_index(inc1);
	ASSERT_TRUE(i1);
	EXPECT_EQ(i1->value("parent", ""), "../full");
	EXPECT_EQ(i1->value("parent_id", ""), fi->value("id", ""));
	EXPECT_GE(own_pages(*i1), 8u) << "the 8 hot pages were written and must be in the increment";
	EXPECT_LT(own_pages(*i1), 400u) << "an increment must hold the written pages only";

	std::this_thread::sleep_for(200ms);
	// Paused: the workload records the checksum of this exact moment, which the restore must reproduce.
	ASSERT_EQ(kill(pid, SIGUSR2), 0);
	std::this_thread::sleep_for(300ms);
	r = dump(pid, inc2, {"--prev-images-dir", inc1.string()});  // kills it, and ends the tracking
	ASSERT_EQ(r.exit_code, 0) << r.describe();
	auto i2 = read_index(inc2);
	ASSERT_TRUE(i2);
	EXPECT_LT(own_pages(*i2), 400u);
	EXPECT_FALSE(tracked(pid)) << "a dump without --track-mem must end the tracking";
	ASSERT_TRUE(wl.exited(5s));
	wl.kill_all();

	RestoreRun rr;
	Restored tree;
	ASSERT_TRUE(restore_detached(rr, tree, inc2, *i2));
	EXPECT_EQ(verify_restored(rr, tree, pid), "PASS");
}

// An increment against an image of another process is no increment: a full image, and it says why.
TEST_F(Incremental, ParentOfAnotherProcessGivesFullImage)
{
	Workload a, b;
	ASSERT_TRUE(a.start("dirty_pages", {"--mem-mib", "16"})) << a.error();
	ASSERT_TRUE(b.start("dirty_pages", {"--mem-mib", "16"})) << b.error();
	RunResult r = dump(a.pid(), tmp_ / "a", {"-R", "--track-mem"});
	ASSERT_EQ(r.exit_code, 0) << r.describe();
	r = dump(b.pid(), tmp_ / "b", {"-R", "--track-mem", "--prev-images-dir", (tmp_ / "a").string()});
	ASSERT_EQ(r.exit_code, 0) << r.describe();
	EXPECT_NE(r.err.find("saved whole"), std::string::npos) << r.err;
	auto ib = read_index(tmp_ / "b");
	ASSERT_TRUE(ib);
	EXPECT_FALSE(ib->contains("parent")) << "nothing inherits, so the image must not name a parent";
	EXPECT_GE(own_pages(*ib), 4096u);
	EXPECT_EQ(run_bpfckpt({"untrack", "-t", std::to_string(a.pid())}).exit_code, 0);
	EXPECT_EQ(run_bpfckpt({"untrack", "-t", std::to_string(b.pid())}).exit_code, 0);
	EXPECT_EQ(a.verify(), "PASS");
	EXPECT_EQ(b.verify(), "PASS");
}

// A parent that is missing, or an increment taken against an older image than the last tracked one: a full image
// (the marks were reset by the newer dump, so an increment would lose pages), and the target runs on untouched.
TEST_F(Incremental, StaleOrMissingParentGivesFullImage)
{
	Workload wl;
	ASSERT_TRUE(wl.start("dirty_pages", {"--mem-mib", "16"})) << wl.error();
	pid_t pid = wl.pid();
	ASSERT_EQ(dump(pid, tmp_ / "full", {"-R", "--track-mem"}).exit_code, 0);
	ASSERT_EQ(dump(pid, tmp_ / "inc1", {"-R", "--track-mem", "--prev-images-dir", (tmp_ / "full").string()})
			  .exit_code,
		  0);
	RunResult r = dump(pid, tmp_ / "stale", {"-R", "--track-mem", "--prev-images-dir", (tmp_ / "full").string()});
	ASSERT_EQ(r.exit_code, 0) << r.describe();
	EXPECT_NE(r.err.find("not relative to the parent"), std::string::npos) << r.err;
	auto st = read_index(tmp_ / "stale");
	ASSERT_TRUE(st);
	EXPECT_FALSE(st->contains("parent"));

	r = dump(pid, tmp_ / "orphan", {"-R", "--track-mem", "--prev-images-dir", (tmp_ / "nowhere").string()});
	ASSERT_EQ(r.exit_code, 0) << r.describe();
	EXPECT_NE(r.err.find("not usable as a parent"), std::string::npos) << r.err;
	EXPECT_FALSE(read_index(tmp_ / "orphan")->contains("parent"));
	EXPECT_EQ(run_bpfckpt({"untrack", "-t", std::to_string(pid)}).exit_code, 0);
	EXPECT_FALSE(tracked(pid));
	EXPECT_EQ(wl.verify(), "PASS");
}

// The keeper holds the tracking for as long as the target lives, and no longer.
TEST_F(Incremental, KeeperExitsWithTarget)
{
	Workload wl;
	ASSERT_TRUE(wl.start("dirty_pages", {"--mem-mib", "8"})) << wl.error();
	ASSERT_EQ(dump(wl.pid(), tmp_ / "full", {"-R", "--track-mem"}).exit_code, 0);
	pid_t keeper = keeper_of(wl.pid());
	ASSERT_GT(keeper, 0);
	PidFd k(keeper);
	ASSERT_TRUE(k.valid());
	EXPECT_FALSE(k.exited(100ms));
	wl.kill_all();
	EXPECT_TRUE(k.exited(5s)) << "the keeper outlived its target";
}

// watch --interval 1 --keep 3 for a few seconds: at most 3 snapshots stay, the oldest kept one stands alone, and
// each restores; SIGINT ends it with the target running and untracked.
TEST_F(Incremental, WatchKeepsThreeRestorableSnapshots)
{
	Workload wl;
	ASSERT_TRUE(wl.start("dirty_pages", {"--mem-mib", "32"})) << wl.error();
	pid_t pid = wl.pid();
	fs::path dir = tmp_ / "snaps";
	Command watch;
	ASSERT_TRUE(watch.start({bpfckpt_bin(), "watch", "-t", std::to_string(pid), "-D", dir.string(), "--interval",
				 "1", "--keep", "3", "--json"}));
	std::this_thread::sleep_for(6s);
	ASSERT_EQ(kill(watch.pid(), SIGINT), 0);
	RunResult r = watch.finish();
	ASSERT_EQ(r.exit_code, 0) << r.describe();
	EXPECT_GE(std::count(r.out.begin(), r.out.end(), '\n'), 4) << r.out;
	EXPECT_FALSE(tracked(pid)) << "watch must leave the target untracked";
	std::vector<fs::path> kept;
	for (const auto& e : fs::directory_iterator(dir))
		kept.push_back(e.path());
	std::sort(kept.begin(), kept.end());
	ASSERT_LE(kept.size(), 3u);
	ASSERT_GE(kept.size(), 2u);
	EXPECT_FALSE(read_index(kept.front())->contains("parent")) << "the oldest kept snapshot must stand alone";
	EXPECT_EQ(wl.verify(), "PASS") << "watch disturbed the workload";
	for (const fs::path& snap : kept) {
		SCOPED_TRACE(snap.string());
		auto index = read_index(snap);
		ASSERT_TRUE(index);
		RestoreRun rr;
		Restored tree;
		ASSERT_TRUE(restore_detached(rr, tree, snap, *index));
		EXPECT_EQ(verify_restored(rr, tree, pid), "PASS");
	}
}

}  // namespace
}  // namespace e2e
