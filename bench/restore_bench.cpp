// bench_restore: how `bpfckpt restore` compares with the obvious alternatives, measured in one run.
//   1. restore of a 64 MiB and a 1 GiB process (wall of `bpfckpt restore -d`, its restore_time and forking_time, and
//      what the wall spends outside restore_time: exec and loading the image, which checksums every blob)
//   2. page-restore throughput for 1 GiB against memcpy (the physical limit), against faulting the same bytes in
//      page by page (first-touch faults), and against MADV_POPULATE_WRITE + one large pread from the page blob (what
//      the engine's shim does)
//   3. restore of a tree of 100 processes against that of a single tiny process
// Each image is dumped once into /var/tmp and restored from repeatedly; after every restore the restored processes
// are killed and their PIDs waited for until free, so that the next restore can take them again.
// A benchmark, not a test: it prints figures and ratios; targets that are missed are reported, not failed.
// On the PVM guests first-touch faults are slow and idle memory goes back to the host (KERNEL.md, costs), so each
// comparison has a warm-up and runs its alternatives interleaved, reporting medians.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench_util.h"
#include "common/fd.h"
#include "common/result.h"
#include "image/validate.h"

namespace {

using namespace bpfckpt;
using namespace bench;

constexpr size_t kPage = 4096;

struct Config {
	bool quick = false;
	size_t small_mib = 64;
	size_t big_mib = 1024;
	int tree_processes = 100;
	int rounds = 3;

	explicit Config(const Options& opt) : quick(opt.quick)
	{
		if (quick) {
			small_mib = 16;
			big_mib = 256;
			tree_processes = 20;
		}
	}

	// What --json says the run was.
	Json to_json() const
	{
		return {{"quick", quick},
			{"small_mib", small_mib},
			{"big_mib", big_mib},
			{"tree_processes", tree_processes},
			{"rounds", rounds}};
	}
};

// A scratch directory /var/tmp/bpfckpt-rbench-XXXXXX, where the images go.
constexpr std::string_view kWorkTag = "rbench";

// Commands here read to EOF, and a restored process that kept the pipe as its stdout would hold it open.
constexpr Awaited kEof{"EOF", " (did a restored process keep its stdout?)"};

// --- PIDs ------------------------------------------------------------------------------------------------------------

bool pid_exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

// Reaps whatever of ours has exited (we are a child subreaper, so that includes restored processes whose restorer
// has gone) until none of pids exists any more, zombies included: only then can a restore take them again.
Status wait_pids_free(const std::vector<pid_t>& pids, int timeout_s)
{
	auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
	for (;;) {
		int st;
		while (::waitpid(-1, &st, WNOHANG | __WALL) > 0) {
		}
		auto busy = std::ranges::find_if(pids, pid_exists);
		if (busy == pids.end())
			return {};
		if (Clock::now() > deadline)
			return fail(ExitCode::failure, "pid {} still in use {} s after it was killed", *busy, timeout_s);
		BCK_CHECK(check_stop());
		std::this_thread::sleep_for(std::chrono::microseconds(500));
	}
}

// Restored processes: not spawned by us, so addressed through pidfds (a PID could be reused, a pidfd cannot). Killed
// on every path; the caller waits for their PIDs to be free with wait_pids_free.
class Restored {
public:
	static Result<Restored> attach(const std::vector<pid_t>& pids)
	{
		Restored r;
		for (pid_t pid : pids) {
			int fd = int(::syscall(SYS_pidfd_open, pid, 0));
			if (fd < 0)
				return fail_sys(errno, "restored pid {}: pidfd_open", pid);
			r.fds_.emplace_back(fd);
			pollfd pfd{fd, POLLIN, 0};
			if (::poll(&pfd, 1, 0) > 0)
				return fail(ExitCode::failure, "restored pid {} has already exited", pid);
		}
		return r;
	}
	Restored() = default;
	Restored(Restored&&) noexcept = default;
	Restored& operator=(Restored&&) = delete;
	~Restored() { kill(); }

	// SIGKILL to each, then waits until each has exited (its pidfd becomes readable).
	void kill()
	{
		for (const UniqueFd& fd : fds_)
			::syscall(SYS_pidfd_send_signal, fd.get(), SIGKILL, nullptr, 0);
		for (const UniqueFd& fd : fds_) {
			pollfd pfd{fd.get(), POLLIN, 0};
			while (::poll(&pfd, 1, 10000) < 0 && errno == EINTR) {
			}
		}
		fds_.clear();
	}

private:
	std::vector<UniqueFd> fds_;
};

// --- dump and restore ------------------------------------------------------------------------------------------------

// A dumped image: where it is, the PIDs its restore takes, and what the dump cost (once, for reference).
struct Image {
	std::string dir;
	std::vector<pid_t> pids;
	double dump_wall_us = 0;
	std::string pages_blob;  // of the process with the most pages
	uint64_t pages = 0;      // in all processes
};

// Starts a target, dumps it (which kills it), reaps it and everything it forked, and waits until its PIDs are free.
Result<Image> make_image(const WorkDir& work, const std::string& name, const std::vector<std::string>& argv,
			 int timeout_s)
{
	Image img;
	img.dir = work.path(name);
	Target target = BCK_TRY(start_target(argv, work.path(name + ".out"), timeout_s));
	if (target.ready.contains("pids"))
		img.pids = target.ready.at("pids").get<std::vector<pid_t>>();
	else
		img.pids = {target.child.pid()};
	progress(fmt::format("dumping {} ({} process(es)) into {}", name, img.pids.size(), img.dir));
	CommandResult r = BCK_TRY(run_command({BENCH_BPFCKPT_BIN, "dump", "-t", std::to_string(target.child.pid()), "-D",
					       img.dir, "--stats", "--json"},
					      600, kEof));
	if (!r.succeeded())
		return fail(ExitCode::failure, "bpfckpt dump of {} failed (status {:#x}):\n{}", name, r.status, r.output);
	img.dump_wall_us = r.wall_us;
	// The dump killed the tree: reap the root (our child) and the rest (orphaned to us), until every PID is free.
	target.child.stop();
	BCK_CHECK(wait_pids_free(img.pids, 30));

	image::Image loaded = BCK_TRY(image::load_image(img.dir));
	uint64_t most = 0;
	for (const auto& p : loaded.processes) {
		uint64_t n = 0;
		for (const auto& v : p.vmas)
			for (const auto& run : v.pages)
				n += run.npages;
		img.pages += n;
		if (n > most) {
			most = n;
			img.pages_blob = img.dir + "/" + p.pages_blob;
		}
	}
	return img;
}

struct RestoreRun {
	double wall_us = 0;
	Json stats;  // forking_time, restore_time (microseconds), pages_restored, processes
};

// One `bpfckpt restore -d`, then the restored processes killed and their PIDs waited for until free.
Result<RestoreRun> restore_once(const Image& img)
{
	CommandResult r =
		BCK_TRY(run_command({BENCH_BPFCKPT_BIN, "restore", "-D", img.dir, "-d", "--stats", "--json"}, 600, kEof));
	// Whatever happened, nothing restored may outlive this call.
	auto restored = Restored::attach(img.pids);
	if (!r.succeeded()) {
		if (restored)
			restored->kill();
		BCK_CHECK(wait_pids_free(img.pids, 30));
		return fail(ExitCode::failure, "bpfckpt restore -D {} failed (status {:#x}):\n{}", img.dir, r.status,
			    r.output);
	}
	if (!restored) {
		// Some did not come back: kill those that did.
		for (pid_t pid : img.pids)
			if (auto one = Restored::attach({pid}))
				one->kill();
		BCK_CHECK(wait_pids_free(img.pids, 30));
		return std::unexpected(restored.error());
	}
	restored->kill();
	BCK_CHECK(wait_pids_free(img.pids, 30));
	RestoreRun run{r.wall_us, BCK_TRY(last_json(r, "bpfckpt restore"))};
	if (run.stats.value("processes", 0) != int(img.pids.size()))
		return fail(ExitCode::failure, "restore of {} reports {} processes, expected {}", img.dir,
			    run.stats.value("processes", 0), img.pids.size());
	return run;
}

void add_restore_samples(Samples& s, const std::string& prefix, const RestoreRun& r)
{
	s.add(prefix + ".wall", r.wall_us);
	s.add(prefix + ".forking_time", r.stats.value("forking_time", 0.0));
	s.add(prefix + ".restore_time", r.stats.value("restore_time", 0.0));
	s.add(prefix + ".pages_restored", r.stats.value("pages_restored", 0.0));
}

// Loading the image in-process, as restore does before its restore_time starts: parse, validate, checksum every blob.
Result<double> time_load_image(const Image& img)
{
	auto t0 = Clock::now();
	BCK_TRY(image::load_image(img.dir));
	return us_since(t0);
}

// --- 2. the alternatives for filling memory ---------------------------------------------------------------------------

// Fresh anonymous memory filled page by page: one first-touch fault per 4 KiB page (THP is madvise-only here).
Result<double> time_fault_copy(const Buffer& src, size_t bytes)
{
	auto t0 = Clock::now();
	Buffer m = BCK_TRY(Buffer::fresh(bytes));
	for (size_t off = 0; off < bytes; off += kPage)
		std::memcpy(m.data() + off, src.data() + off, kPage);
	asm volatile("" ::"r"(m.data()) : "memory");
	return us_since(t0);  // without the munmap
}

struct PopulateRead {
	double populate_us = 0, pread_us = 0;
};

// What the shim does: fresh anonymous memory, MADV_POPULATE_WRITE over all of it, one large pread from the page blob.
Result<PopulateRead> time_populate_pread(const std::string& blob, size_t bytes)
{
	UniqueFd fd(::open(blob.c_str(), O_RDONLY | O_CLOEXEC));
	if (!fd)
		return fail_sys(errno, "open {}", blob);
	struct stat st {};
	if (::fstat(fd.get(), &st) != 0 || size_t(st.st_size) < bytes)
		return fail(ExitCode::failure, "{}: {} bytes, fewer than the {} to read", blob, st.st_size, bytes);
	PopulateRead r;
	auto t0 = Clock::now();
	Buffer m = BCK_TRY(Buffer::fresh(bytes));
	if (::madvise(m.data(), bytes, MADV_POPULATE_WRITE) != 0)
		return fail_sys(errno, "madvise(MADV_POPULATE_WRITE)");
	r.populate_us = us_since(t0);
	auto t1 = Clock::now();
	for (size_t done = 0; done < bytes;) {
		ssize_t n = ::pread(fd.get(), m.data() + done, bytes - done, off_t(done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return fail_sys(n < 0 ? errno : EIO, "pread {}", blob);
		done += size_t(n);
	}
	r.pread_us = us_since(t1);
	return r;
}

// --- 1./2. restore of a small and a big process ----------------------------------------------------------------------

void report_memory(const Config& cfg, const Samples& s, Report& rep)
{
	auto tag = [](size_t mib) { return mib % 1024 == 0 ? fmt::format("{}g", mib / 1024) : fmt::format("{}m", mib); };
	for (size_t mib : {cfg.small_mib, cfg.big_mib}) {
		std::string p = "restore_" + tag(mib);
		double wall = s.med(p + ".wall"), rt = s.med(p + ".restore_time"), fork = s.med(p + ".forking_time");
		double load = s.med(p + ".load_image");
		rep.info(p + ".size", double(mib), "MiB");
		rep.info(p + ".wall", wall / 1e3, "ms");
		rep.ratio(p + ".restore_time", rt / 1e3, "ms", wall > 0 ? rt / wall : 0, "restore_time vs wall");
		rep.ratio(p + ".forking_time", fork / 1e3, "ms", rt > 0 ? fork / rt : 0, "forking_time vs restore_time");
		rep.ratio(p + ".outside_restore_time", (wall - rt) / 1e3, "ms", wall > 0 ? (wall - rt) / wall : 0,
			  "wall - restore_time vs wall");
		rep.ratio(p + ".load_image", load / 1e3, "ms", wall > rt ? load / (wall - rt) : 0,
			  "in-process load_image (checksums) vs wall - restore_time");
		rep.info(p + ".pages_restored", s.med(p + ".pages_restored"), "pages");
	}
	double exec = s.med("exec_only");
	rep.info("restore.exec_only", exec / 1e3, "ms");
	std::string sm = "restore_" + tag(cfg.small_mib), bg = "restore_" + tag(cfg.big_mib);
	double scale = double(cfg.big_mib) / double(cfg.small_mib);
	rep.ratio("restore.scaling", s.med(bg + ".restore_time") / 1e3, "ms",
		  s.med(bg + ".restore_time") / std::max(1.0, s.med(sm + ".restore_time")),
		  fmt::format("{} vs {} restore_time (sizes {:g}x apart)", bg, sm, scale));

	// 2. throughput of the big one.
	double bytes = double(cfg.big_mib << 20);
	double restored = s.med(bg + ".pages_restored") * kPage;
	double rt = s.med(bg + ".restore_time");
	double copy = s.med("memcpy"), fault = s.med("fault_copy");
	double pop = s.med("populate"), pread = s.med("pread"), pp = s.med("populate_pread");
	double rate = gbps(restored, rt);
	rep.info("pages.bytes", bytes / double(1 << 20), "MiB");
	rep.info("pages.memcpy", copy / 1e3, "ms");
	rep.info("pages.memcpy_rate", gbps(bytes, copy), "GB/s");
	rep.info("pages.fault_copy", fault / 1e3, "ms");
	rep.info("pages.fault_copy_rate", gbps(bytes, fault), "GB/s");
	rep.info("pages.fault_copy_per_page", fault / (bytes / kPage), "us");
	rep.info("pages.populate_pread", pp / 1e3, "ms");
	rep.info("pages.populate_pread_rate", gbps(bytes, pp), "GB/s");
	rep.ratio("pages.populate", pop / 1e3, "ms", pp > 0 ? pop / pp : 0, "populate vs populate+pread");
	rep.info("pages.populate_per_page", pop / (bytes / kPage), "us");
	rep.ratio("pages.pread", pread / 1e3, "ms", pp > 0 ? pread / pp : 0, "pread vs populate+pread");
	rep.info("pages.pread_rate", gbps(bytes, pread), "GB/s");
	rep.info("pages.restore_rate", rate, "GB/s");
	rep.ratio("pages.restore_vs_fault", rate, "GB/s", fault > 0 ? rate / gbps(bytes, fault) : 0,
		  "restore vs page-by-page faulting", Goal{false, 4, "x"});
	rep.ratio("pages.restore_vs_populate_pread", rate, "GB/s", pp > 0 ? rate / gbps(bytes, pp) : 0,
		  "restore vs populate+pread");
	rep.ratio("pages.restore_vs_memcpy", rate, "GB/s", copy > 0 ? rate / gbps(bytes, copy) : 0,
		  "restore vs memcpy");
	// What restore_time spends besides filling the pages, were it as fast as populate+pread alone.
	rep.ratio("pages.restore_overhead", std::max(0.0, rt - pp) / 1e3, "ms", rt > 0 ? std::max(0.0, rt - pp) / rt : 0,
		  "restore_time - populate+pread vs restore_time");
}

Status bench_memory(const Config& cfg, Report& rep)
{
	auto tag = [](size_t mib) { return mib % 1024 == 0 ? fmt::format("{}g", mib / 1024) : fmt::format("{}m", mib); };
	size_t bytes = cfg.big_mib << 20;
	WorkDir work = BCK_TRY(WorkDir::create(kWorkTag));
	auto [src, dst] = BCK_TRY(fill_buffers(bytes));

	std::map<size_t, Image> images;
	for (size_t mib : {cfg.small_mib, cfg.big_mib}) {
		BCK_CHECK(check_stop());
		progress(fmt::format("starting a target with {} MiB of random memory", mib));
		images[mib] = BCK_TRY(make_image(work, "mem_" + tag(mib), {BENCH_TARGET_MEM, std::to_string(mib)}, 300));
		rep.info(fmt::format("dump_{}.wall", tag(mib)), images[mib].dump_wall_us / 1e3, "ms");
	}
	const Image& big = images[cfg.big_mib];

	Samples s;
	for (int round = -1; round < cfg.rounds; round++) {  // -1: warm-up
		progress_round("memory", round);
		s.recording = round >= 0;
		for (size_t mib : {cfg.small_mib, cfg.big_mib}) {
			BCK_CHECK(check_stop());
			std::string p = "restore_" + tag(mib);
			BCK_CHECK(prewarm(work, src, mib << 20));
			add_restore_samples(s, p, BCK_TRY(restore_once(images[mib])));
			s.add(p + ".load_image", BCK_TRY(time_load_image(images[mib])));
		}
		BCK_CHECK(check_stop());
		s.add("exec_only", BCK_TRY(run_command({BENCH_BPFCKPT_BIN, "--version"}, 10, kEof)).wall_us);
		s.add("memcpy", time_memcpy(dst, src));
		BCK_CHECK(prewarm(work, src, bytes));
		s.add("fault_copy", BCK_TRY(time_fault_copy(src, bytes)));
		BCK_CHECK(check_stop());
		BCK_CHECK(prewarm(work, src, bytes));
		PopulateRead pr = BCK_TRY(time_populate_pread(big.pages_blob, bytes));
		s.add("populate", pr.populate_us);
		s.add("pread", pr.pread_us);
		s.add("populate_pread", pr.populate_us + pr.pread_us);
	}
	report_memory(cfg, s, rep);
	return {};
}

// --- 3. a tree of processes ------------------------------------------------------------------------------------------

Status bench_tree(const Config& cfg, Report& rep)
{
	WorkDir work = BCK_TRY(WorkDir::create(kWorkTag));
	progress(fmt::format("starting a tree of {} processes", cfg.tree_processes));
	Image tree = BCK_TRY(make_image(work, "tree", {BENCH_TARGET_TREE, std::to_string(cfg.tree_processes)}, 120));
	Image one = BCK_TRY(make_image(work, "idle", {BENCH_TARGET_IDLE}, 30));
	Buffer src = BCK_TRY(Buffer::map(128 << 20));  // for the prewarm: a few MiB per restored process at most
	src.fill_random(0x9e3779b97f4a7c15ull);

	Samples s;
	for (int round = -1; round < cfg.rounds; round++) {  // -1: warm-up
		progress_round("tree", round);
		s.recording = round >= 0;
		BCK_CHECK(check_stop());
		BCK_CHECK(prewarm(work, src, src.size()));
		add_restore_samples(s, "tree", BCK_TRY(restore_once(tree)));
		BCK_CHECK(check_stop());
		BCK_CHECK(prewarm(work, src, src.size()));
		add_restore_samples(s, "single", BCK_TRY(restore_once(one)));
		s.add("single.load_image", BCK_TRY(time_load_image(one)));
	}
	double n = double(tree.pids.size());
	double wall = s.med("tree.wall"), rt = s.med("tree.restore_time"), fork = s.med("tree.forking_time");
	double wall1 = s.med("single.wall"), rt1 = s.med("single.restore_time"), fork1 = s.med("single.forking_time");
	rep.info("tree.processes", n, "processes");
	rep.info("tree.dump_wall", tree.dump_wall_us / 1e3, "ms");
	rep.ratio("tree.wall", wall / 1e3, "ms", wall1 > 0 ? wall / wall1 : 0, "tree vs single-process wall");
	rep.ratio("tree.restore_time", rt / 1e3, "ms", wall > 0 ? rt / wall : 0, "restore_time vs wall");
	rep.ratio("tree.forking_time", fork / 1e3, "ms", rt > 0 ? fork / rt : 0, "forking_time vs restore_time");
	rep.ratio("tree.forking_per_process", fork / n / 1e3, "ms", fork1 > 0 ? fork / n / fork1 : 0,
		  "per process in the tree vs single-process forking_time");
	rep.ratio("tree.restore_per_process", rt / n / 1e3, "ms", rt1 > 0 ? rt / n / rt1 : 0,
		  "per process in the tree vs single-process restore_time");
	rep.info("tree.pages_restored", s.med("tree.pages_restored"), "pages");
	rep.info("single.wall", wall1 / 1e3, "ms");
	rep.ratio("single.restore_time", rt1 / 1e3, "ms", wall1 > 0 ? rt1 / wall1 : 0, "restore_time vs wall");
	rep.ratio("single.forking_time", fork1 / 1e3, "ms", rt1 > 0 ? fork1 / rt1 : 0, "forking_time vs restore_time");
	rep.info("single.pages_restored", s.med("single.pages_restored"), "pages");
	double load1 = s.med("single.load_image");
	rep.ratio("single.load_image", load1 / 1e3, "ms", wall1 > rt1 ? load1 / (wall1 - rt1) : 0,
		  "in-process load_image vs wall - restore_time");
	return {};
}

// --- main ------------------------------------------------------------------------------------------------------------

Status run_all(const Config& cfg, Report& rep)
{
	BCK_CHECK(bench_memory(cfg, rep));
	BCK_CHECK(bench_tree(cfg, rep));
	return {};
}

constexpr bench::Benchmark kBenchmark{.name = "bench_restore",
				      .command = "restore",
				      .quick_sizes = "16 MiB and 256 MiB, a tree of 20",
				      .why_root = "BPF iterators, ptrace, clone3 set_tid"};

}  // namespace

int main(int argc, char** argv) { return bench::run_benchmark<Config>(argc, argv, kBenchmark, run_all); }
