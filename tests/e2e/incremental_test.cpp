// Issue 5: write tracking (--track-mem), incremental dumps (--prev-images-dir), restore of a chain, and watch.
// The workload is tests/workloads/dirty_pages: 256 MiB that stay as they were, and 8 hot pages rewritten every 2 ms.
#include <elf.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <xxhash.h>

#include <fstream>
#include <thread>

#include "common/exit_codes.h"
#include "core/image_pages.h"
#include "image/chain.h"
#include "harness.h"
#include "restore_run.h"
#include "test_cgroup.h"

namespace e2e {
namespace {


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
	uint64_t p, start, mm;  // mm is a 64-bit hash: it does not fit a signed long half of the time
	long keeper = 0;
	in >> p >> start >> mm >> keeper;
	return pid_t(keeper);
}

RunResult dump(pid_t pid, const fs::path& dir, std::vector<std::string> extra, const RunOptions& opt = {})
{
	std::vector<std::string> args{"dump", "-t", std::to_string(pid), "-D", dir.string(), "--json"};
	args.insert(args.end(), extra.begin(), extra.end());
	return run_bpfckpt(args, opt);
}

// `bpfckpt core` of img for pid, and the XXH3 of the bytes its PT_LOAD gives [addr, addr + len): 0 when the core
// is missing or does not hold all of them.
uint64_t core_memory_xxh3(const fs::path& img, const fs::path& out, pid_t pid, uint64_t addr, uint64_t len)
{
	RunResult r = run_bpfckpt({"core", "-D", img.string(), "-o", out.string(), "--pid", std::to_string(pid)});
	EXPECT_EQ(r.exit_code, 0) << r.describe();
	std::string path = (out / ("core." + std::to_string(pid))).string();
	int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	struct stat st;
	fstat(fd, &st);
	void* m = mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return 0;
	const char* core = static_cast<const char*>(m);
	const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(core);
	const auto* ph = reinterpret_cast<const Elf64_Phdr*>(core + eh->e_phoff);
	uint64_t sum = 0;
	for (int i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_type == PT_LOAD && ph[i].p_vaddr <= addr && addr + len <= ph[i].p_vaddr + ph[i].p_filesz &&
		    ph[i].p_offset + ph[i].p_filesz <= uint64_t(st.st_size))
			sum = XXH3_64bits(core + ph[i].p_offset + (addr - ph[i].p_vaddr), len);
	munmap(m, size_t(st.st_size));
	return sum;
}

class Incremental : public testing::Test {
protected:
	void SetUp() override { REQUIRE_ROOT_OR_SKIP(); }
	TempDir tmp_;
};

// A --track-mem dump, then two incremental ones: each holds only the pages written since (a few, not 65536);
// the last, restored after the workload is killed, brings back every page of the moment it was taken. Before it the
// hot pages, written since the first increment, are dropped: they must come back as zeros, not as the parent's
// (the workload's checksum has read them since, so they are mapped to the zero page: saved as zeros, not zero runs);
// and a second mapping is unmapped: it must not come back from the parents.
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
	std::string paused;
	ASSERT_TRUE(wl.read_line(paused, 10s));
	uint64_t paused_sum = 0;
	ASSERT_EQ(sscanf(paused.c_str(), "PAUSED %" SCNx64, &paused_sum), 1) << paused;
	ASSERT_EQ(kill(pid, SIGURG), 0);
	std::string dropped;
	ASSERT_TRUE(wl.read_line(dropped, 10s));
	uint64_t dropped_sum = 0;
	ASSERT_EQ(sscanf(dropped.c_str(), "DROPPED %" SCNx64, &dropped_sum), 1) << dropped;
	ASSERT_NE(dropped_sum, paused_sum);
	paused_sum = dropped_sum;
	r = dump(pid, inc2, {"--prev-images-dir", inc1.string()});  // kills it, and ends the tracking
	ASSERT_EQ(r.exit_code, 0) << r.describe();
	auto i2 = read_index(inc2);
	ASSERT_TRUE(i2);
	EXPECT_LT(own_pages(*i2), 400u);
	uint64_t extra = wl.ready().at("extra_addr").get<uint64_t>();
	for (const auto& v : i2->at("processes").at(0).at("vmas"))
		EXPECT_FALSE(v.at("start").get<uint64_t>() <= extra && extra < v.at("end").get<uint64_t>())
		    << "the unmapped mapping at " << std::hex << extra << " is still in the increment";
	EXPECT_FALSE(tracked(pid)) << "a dump without --track-mem must end the tracking";
	ASSERT_TRUE(wl.exited(5s));
	wl.kill_all();

	// The core of the newest image holds the memory of that moment too, taken through the chain.
	EXPECT_EQ(core_memory_xxh3(inc2, tmp_ / "cores", pid, wl.ready().at("mem_addr").get<uint64_t>(),
				   wl.ready().at("mem_size").get<uint64_t>()),
		  paused_sum);

	RestoreRun rr;
	Restored tree;
	ASSERT_TRUE(restore_detached(rr, tree, inc2, *i2));
	EXPECT_EQ(verify_restored(rr, tree, pid), "PASS");
}

// The sweeper's picture (tests/workloads/sweeper.c) as the image holds it: the counter in the page after the
// N MiB, and each page at the generation it says. The page being rewritten at the freeze is a prefix of words in
// the new generation and the rest in the old one. Checked in the image itself, before a restored writer could
// rewrite an inconsistent page: "PASS" or what is wrong.
std::string sweeper_picture_in_image(const fs::path& img, pid_t pid, uint64_t mem_addr, uint64_t mem_size)
{
	constexpr uint64_t kPage = 4096, kWords = kPage / 8;
	auto chain = bpfckpt::image::Chain::load(img.string(), true);
	if (!chain)
		return "cannot load " + img.string() + ": " + chain.error().describe();
	const bpfckpt::image::Process* proc = nullptr;
	for (const bpfckpt::image::Process& p : chain->newest().processes)
		if (p.pid == uint32_t(pid))
			proc = &p;
	if (!proc)
		return "pid " + std::to_string(pid) + " is not in the image";
	std::vector<uint64_t> mem((mem_size + kPage) / 8);
	bpfckpt::core::ImagePages pages(*chain);
	auto holes = pages.read(*proc, mem_addr, mem_size + kPage, reinterpret_cast<char*>(mem.data()));
	if (!holes || !holes->empty())
		return "the image does not hold all of the sweeper's memory";
	uint64_t npages = mem_size / kPage, n = mem[npages * kWords];
	auto word = [](uint64_t p, uint64_t g) { return g * 0x9e3779b97f4a7c15ull ^ p; };
	for (uint64_t p = 0; p < npages; p++) {
		uint64_t g = n / npages + (p < n % npages ? 1 : 0);
		bool in_progress = p == n % npages, newer = in_progress;
		for (uint64_t i = 0; i < kWords; i++) {
			uint64_t w = mem[p * kWords + i];
			if (newer && w == word(p, g + 1))
				continue;
			newer = false;
			if (w != word(p, g))
				return fmt::format("page {} word {} is {:x}, not generation {} ({} page writes done)", p, i, w,
						   g, n);
		}
	}
	return "PASS";
}

// sweeper (with `args`) dumped with -R and `extra`: the workload goes on undisturbed, and the image, read and
// restored, has every page at the generation its own counter says: one moment. The dump waits 100 ms between
// arming the process and freezing it, so pages are written in between. Returns the dump's stderr.
std::string expect_one_moment(const fs::path& img, const std::vector<std::string>& args,
			      const std::vector<std::string>& extra)
{
	Workload wl;
	EXPECT_TRUE(wl.start("sweeper", args)) << wl.error();
	if (wl.pid() <= 0)
		return "";
	pid_t pid = wl.pid();
	std::this_thread::sleep_for(300ms);  // a few sweeps in: pages of several generations
	std::vector<std::string> opts{"-R"};
	opts.insert(opts.end(), extra.begin(), extra.end());
	RunResult r = dump(pid, img, opts, {.env = {{"BPFCKPT_TEST_STALL_ARMED_MS", "100"}}});
	EXPECT_EQ(r.exit_code, 0) << r.describe();
	std::this_thread::sleep_for(200ms);
	EXPECT_EQ(wl.verify(), "PASS") << "the dump disturbed the writer";
	EXPECT_EQ(sweeper_picture_in_image(img, pid, wl.ready().at("mem_addr"), wl.ready().at("mem_size")), "PASS");
	wl.kill_all();
	auto index = read_index(img);
	if (!index) {
		ADD_FAILURE() << "no image at " << img;
		return r.err;
	}
	RestoreRun rr;
	Restored tree;
	EXPECT_TRUE(restore_detached(rr, tree, img, *index));
	EXPECT_EQ(verify_restored(rr, tree, pid), "PASS");
	return r.err;
}

// -R while a writer rewrites every page of 256 MiB: the memory is copied after the thaw, each page before its
// first write, and the image is the moment of the freeze.
TEST_F(Incremental, LeaveRunningImageIsOneMomentOfAWriterSweepingAllMemory)
{
	expect_one_moment(tmp_ / "img", {"--mem-mib", "256"}, {});
}

// The same while another thread maps and unmaps memory all the time: pages the copy after the thaw had not
// taken yet go away, so that copy is given up and the dump taken again with the memory copied while frozen; either
// way the image is one moment. And --frozen-copy, the old way, gives one too.
TEST_F(Incremental, LeaveRunningWithUnmapsAndFrozenCopyAreOneMomentToo)
{
	std::string err = expect_one_moment(tmp_ / "live", {"--mem-mib", "128", "--churn"}, {});
	if (err.find("dumping again") != std::string::npos)
		std::cerr << "[ NOTE     ] the copy after the thaw was given up: " << err;
	expect_one_moment(tmp_ / "frozen", {"--mem-mib", "128", "--churn"}, {"--frozen-copy"});
}

// A full -R --track-mem dump copies the memory before the freeze, after resetting the marks, and reads again while
// frozen what was written since: with every page rewritten all the time that is all of it (256 MiB: more than the
// staging holds, so it is written over the copy while frozen). With a thread that maps and unmaps, the layout at
// the freeze differs from the copy's: the pages that came since are read while frozen and placed at the blob's end,
// those that went are left out. Either way the image is one moment.
TEST_F(Incremental, TrackedFullDumpCopiedBeforeTheFreezeIsOneMoment)
{
	expect_one_moment(tmp_ / "sweep", {"--mem-mib", "256"}, {"--track-mem"});
	expect_one_moment(tmp_ / "churn", {"--mem-mib", "128", "--churn"}, {"--track-mem"});
}

// A chain of increments of a writer that rewrites all of its memory all the time: the marks are reset before the
// freeze and only read while frozen, so pages written between that reset and the freeze, and between the freeze and
// the next reset, must reach the right image. Every link of the chain, restored, is one moment. (48 MiB: each
// increment fits the staging for a write after the thaw.)
TEST_F(Incremental, ChainOfAWriterSweepingAllMemoryIsOneMomentAtEveryLink)
{
	Workload wl;
	ASSERT_TRUE(wl.start("sweeper", {"--mem-mib", "48"})) << wl.error();
	pid_t pid = wl.pid();
	std::this_thread::sleep_for(300ms);
	std::vector<fs::path> links{tmp_ / "full", tmp_ / "inc1", tmp_ / "inc2", tmp_ / "inc3"};
	for (size_t i = 0; i < links.size(); i++) {
		std::vector<std::string> opts{"-R", "--track-mem"};
		if (i) {
			opts.push_back("--prev-images-dir");
			opts.push_back(links[i - 1].string());
		}
		RunResult r = dump(pid, links[i], opts);
		ASSERT_EQ(r.exit_code, 0) << r.describe();
		EXPECT_EQ(sweeper_picture_in_image(links[i], pid, wl.ready().at("mem_addr"), wl.ready().at("mem_size")),
			  "PASS")
			<< links[i];
		if (i) {
			ASSERT_TRUE(read_index(links[i])->contains("parent")) << links[i] << " is not an increment";
		}
		std::this_thread::sleep_for(150ms);
	}
	EXPECT_EQ(run_bpfckpt({"untrack", "-t", std::to_string(pid)}).exit_code, 0);
	EXPECT_EQ(wl.verify(), "PASS") << "the dumps disturbed the writer";
	wl.kill_all();
	for (const fs::path& link : {links[3], links[1]}) {
		auto index = read_index(link);
		ASSERT_TRUE(index);
		RestoreRun rr;
		Restored tree;
		ASSERT_TRUE(restore_detached(rr, tree, link, *index)) << link;
		EXPECT_EQ(verify_restored(rr, tree, pid), "PASS") << link;
		tree.kill_all();
	}
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

// A target that exec'd since the parent image has a new address space: the tracking armed in the old one is gone,
// so the next dump is a full image, says why, and arms tracking again; the chain after it works as before.
TEST_F(Incremental, TargetThatExecdGivesFullImage)
{
	Workload wl;
	ASSERT_TRUE(wl.start("dirty_pages", {"--mem-mib", "16"})) << wl.error();
	pid_t pid = wl.pid();
	ASSERT_EQ(dump(pid, tmp_ / "full", {"-R", "--track-mem"}).exit_code, 0);
	ASSERT_EQ(kill(pid, SIGHUP), 0);
	std::string ready;
	ASSERT_TRUE(wl.read_line(ready, 10s));
	ASSERT_EQ(ready.rfind("READY ", 0), 0u) << ready;
	RunResult r = dump(pid, tmp_ / "after", {"-R", "--track-mem", "--prev-images-dir", (tmp_ / "full").string()});
	ASSERT_EQ(r.exit_code, 0) << r.describe();
	EXPECT_NE(r.err.find("same process and address space"), std::string::npos) << r.err;
	auto after = read_index(tmp_ / "after");
	ASSERT_TRUE(after);
	EXPECT_FALSE(after->contains("parent"));
	EXPECT_GE(own_pages(*after), 4096u) << "the 16 MiB must be saved whole";
	r = dump(pid, tmp_ / "inc", {"-R", "--track-mem", "--prev-images-dir", (tmp_ / "after").string()});
	ASSERT_EQ(r.exit_code, 0) << r.describe();
	auto inc = read_index(tmp_ / "inc");
	ASSERT_TRUE(inc);
	EXPECT_EQ(inc->value("parent", ""), "../after");
	EXPECT_LT(own_pages(*inc), 400u);
	EXPECT_EQ(run_bpfckpt({"untrack", "-t", std::to_string(pid)}).exit_code, 0);
	EXPECT_EQ(wl.verify(), "PASS");
}

// The keeper holds the tracking for as long as the target lives, and no longer.
TEST_F(Incremental, KeeperExitsWithTarget)
{
	Workload wl;
	ASSERT_TRUE(wl.start("dirty_pages", {"--mem-mib", "8"})) << wl.error();
	pid_t pid = wl.pid();
	ASSERT_EQ(dump(pid, tmp_ / "full", {"-R", "--track-mem"}).exit_code, 0);
	pid_t keeper = keeper_of(pid);
	ASSERT_GT(keeper, 0);
	PidFd k(keeper);
	ASSERT_TRUE(k.valid());
	EXPECT_FALSE(k.exited(100ms));
	wl.kill_all();
	EXPECT_TRUE(k.exited(5s)) << "the keeper outlived its target";
	EXPECT_FALSE(tracked(pid)) << "the tracking record outlived its target";
}

// The snapshots a watch left in dir, oldest first.
std::vector<fs::path> snapshots(const fs::path& dir)
{
	std::vector<fs::path> kept;
	for (const auto& e : fs::directory_iterator(dir))
		kept.push_back(e.path());
	std::sort(kept.begin(), kept.end());
	return kept;
}

// Each kept snapshot restores (the watched workload has exited by now, so its PID is free) and verifies.
void expect_each_restores(const std::vector<fs::path>& kept, pid_t pid)
{
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

// Runs watch with `target` for `seconds`, then SIGINT: it must end cleanly with one line per snapshot, at most 3
// kept, the oldest kept one standing alone.
std::vector<fs::path> watch_for(const std::vector<std::string>& target, const fs::path& dir, std::chrono::seconds secs)
{
	std::vector<std::string> argv{bpfckpt_bin(), "watch"};
	argv.insert(argv.end(), target.begin(), target.end());
	for (const char* a : {"-D", dir.c_str(), "--interval", "1", "--keep", "3", "--json"})
		argv.push_back(a);
	Command watch;
	EXPECT_TRUE(watch.start(argv));
	std::this_thread::sleep_for(secs);
	EXPECT_EQ(kill(watch.pid(), SIGINT), 0);
	RunResult r = watch.finish();
	EXPECT_EQ(r.exit_code, 0) << r.describe();
	EXPECT_GE(std::count(r.out.begin(), r.out.end(), '\n'), secs.count() - 2) << r.out;
	std::vector<fs::path> kept = snapshots(dir);
	EXPECT_LE(kept.size(), 3u);
	EXPECT_GE(kept.size(), 2u);
	if (!kept.empty()) {
		EXPECT_FALSE(read_index(kept.front())->contains("parent")) << "the oldest kept snapshot must stand alone";
	}
	for (size_t i = 1; i < kept.size(); i++)
		EXPECT_EQ(read_index(kept[i])->value("parent", ""), "../" + kept[i - 1].filename().string());
	return kept;
}

// watch -t PID --interval 1 --keep 3: SIGINT ends it with the target running and untracked; each kept snapshot
// restores.
TEST_F(Incremental, WatchKeepsThreeRestorableSnapshots)
{
	Workload wl;
	ASSERT_TRUE(wl.start("dirty_pages", {"--mem-mib", "32"})) << wl.error();
	pid_t pid = wl.pid();
	auto kept = watch_for({"-t", std::to_string(pid)}, tmp_ / "snaps", 6s);
	EXPECT_FALSE(tracked(pid)) << "watch must leave the target untracked";
	EXPECT_EQ(wl.verify(), "PASS") << "watch disturbed the workload";
	expect_each_restores(kept, pid);
}

// The acceptance case: watch of a cgroup for 10 s, --keep 3; each kept snapshot restores into the cgroup and
// verifies.
TEST_F(Incremental, WatchOfACgroupKeepsThreeRestorableSnapshots)
{
	TestCgroup cg("watch");
	ASSERT_CGROUP(cg);
	Workload wl;
	ASSERT_TRUE(wl.start("dirty_pages", {"--mem-mib", "32"}, {.cgroup_dir = cg.dir()})) << wl.error();
	pid_t pid = wl.pid();
	auto kept = watch_for({cg.path()}, tmp_ / "snaps", 10s);
	EXPECT_FALSE(tracked(pid)) << "watch must leave the target untracked";
	EXPECT_EQ(cg.frozen_ones(), "");
	EXPECT_EQ(wl.verify(), "PASS") << "watch disturbed the workload";
	expect_each_restores(kept, pid);
}

// A small tmpfs of the test's own, unmounted (lazily, with whatever is in it) when the test ends.
class SmallFs {
public:
	SmallFs(const fs::path& at, size_t mib) : at_(at)
	{
		fs::create_directories(at);
		std::string opts = "size=" + std::to_string(mib) + "m,mode=0700";
		ok_ = mount("tmpfs", at.c_str(), "tmpfs", 0, opts.c_str()) == 0;
	}
	~SmallFs()
	{
		if (ok_)
			umount2(at_.c_str(), MNT_DETACH);
	}
	bool ok() const { return ok_; }

private:
	fs::path at_;
	bool ok_ = false;
};

// The disk fills up in the middle of a watch: the snapshots that fail say why and leave nothing behind, the ones
// already taken stay restorable, and after three failures in a row the watch ends with the error, the target running
// and untracked.
TEST_F(Incremental, WatchOnAFullDiskEndsCleanly)
{
	SmallFs small(tmp_ / "small", 48);
	ASSERT_TRUE(small.ok()) << "cannot mount a tmpfs: " << strerror(errno);
	Workload wl;
	ASSERT_TRUE(wl.start("dirty_pages", {"--mem-mib", "16"})) << wl.error();
	pid_t pid = wl.pid();
	fs::path dir = tmp_ / "small" / "snaps";
	Command watch;
	// Every second snapshot is a full one (16 MiB): the second full one does not fit once the filler is there.
	RunOptions opt;
	opt.timeout = 60s;
	ASSERT_TRUE(watch.start({bpfckpt_bin(), "watch", "-t", std::to_string(pid), "-D", dir.string(), "--interval",
				 "0.5", "--full-every", "2", "--no-fsync"},
				opt));
	auto deadline = Clock::now() + 20s;
	while (Clock::now() < deadline && (!fs::exists(dir) || snapshots(dir).size() < 2))
		std::this_thread::sleep_for(50ms);
	ASSERT_GE(snapshots(dir).size(), 2u) << "watch took no snapshots";
	{
		// Fill all but about 4 MiB.
		std::ofstream filler(tmp_ / "small" / "filler", std::ios::binary);
		std::string mib(1 << 20, 'x');
		struct statvfs vfs;
		statvfs((tmp_ / "small").c_str(), &vfs);
		uint64_t free_mib = uint64_t(vfs.f_bavail) * vfs.f_frsize >> 20;
		for (uint64_t i = 0; i + 4 < free_mib; i++)
			filler << mib;
	}
	RunResult r = watch.finish();
	EXPECT_EQ(r.exit_code, int(bpfckpt::ExitCode::io)) << r.describe();
	EXPECT_NE(r.err.find("No space left"), std::string::npos) << r.err;
	EXPECT_FALSE(tracked(pid)) << "watch must leave the target untracked";
	std::vector<fs::path> kept = snapshots(dir);
	for (const fs::path& snap : kept)
		EXPECT_TRUE(fs::exists(snap / "index.json")) << snap << " looks like a snapshot but is not complete";
	EXPECT_EQ(wl.verify(), "PASS") << "watch disturbed the workload";
	fs::remove(tmp_ / "small" / "filler");
	expect_each_restores(kept, pid);
}

}  // namespace
}  // namespace e2e
