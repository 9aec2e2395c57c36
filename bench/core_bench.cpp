// bench_core: how fast `bpfckpt core` turns an image of a 1 GiB process into a core file, against the physical limits
// of what it does, measured in one run:
//   - writing the same bytes from a buffer into the page cache (the write alone)
//   - copying the image's page blob into a new file with pread + write (the read and the write, nothing else)
//   - memcpy of the same bytes
// and what the command spends loading the image (validation and blob checksums) before it writes anything.
// The image is dumped once (target_mem, -R, no fsync) into /var/tmp; each round writes the core, then the
// alternatives, after a warm-up round, with a prewarm before each so that none pays for memory the VM gave back.
// A benchmark, not a test: it prints figures and ratios.
#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <string_view>

#include <fmt/format.h>

#include "bench_util.h"
#include "common/fd.h"
#include "common/fs.h"
#include "common/result.h"
#include "image/validate.h"

namespace {

using namespace bpfckpt;
using namespace bench;

struct Config {
	bool quick = false;
	size_t mem_mib = 1024;
	int rounds = 3;

	explicit Config(const Options& opt) : quick(opt.quick)
	{
		if (quick)
			mem_mib = 256;
	}

	// What --json says the run was.
	Json to_json() const { return {{"quick", quick}, {"mem_mib", mem_mib}, {"rounds", rounds}}; }
};

// A scratch directory /var/tmp/bpfckpt-cbench-XXXXXX, where the image and the cores go.
constexpr std::string_view kWorkTag = "cbench";

struct Dumped {
	std::string dir;
	std::string pages_blob;  // path of the process's page blob
	uint64_t blob_bytes = 0;
};

// target_mem dumped with -R, then stopped: the image is all we need of it.
Result<Dumped> dump_target(const WorkDir& work, size_t mib)
{
	Dumped d{work.path("img")};
	progress(fmt::format("starting a target with {} MiB of random memory", mib));
	Target target = BCK_TRY(start_target({BENCH_TARGET_MEM, std::to_string(mib)}, 300));
	progress(fmt::format("dumping it into {}", d.dir));
	CommandResult r = BCK_TRY(run_command(
		{BENCH_BPFCKPT_BIN, "dump", "-t", std::to_string(target.child.pid()), "-D", d.dir, "-R", "--no-fsync"}, 600));
	if (!r.succeeded())
		return fail(ExitCode::failure, "bpfckpt dump failed (status {:#x}):\n{}", r.status, r.output);
	image::Image img = BCK_TRY(image::load_image(d.dir));
	if (img.processes.size() != 1 || img.processes[0].pages_blob.empty())
		return fail(ExitCode::failure, "{}: expected one process with pages", d.dir);
	d.pages_blob = d.dir + "/" + img.processes[0].pages_blob;
	for (const image::Blob& b : img.blobs)
		if (b.name == img.processes[0].pages_blob)
			d.blob_bytes = b.size;
	return d;
}

struct CoreRun {
	double wall_us = 0;
	double time_us = 0;       // the command's own time_us (loading the image included)
	uint64_t bytes_written = 0;
};

Result<CoreRun> run_core(const Dumped& d, const std::string& out)
{
	CommandResult r = BCK_TRY(run_command({BENCH_BPFCKPT_BIN, "core", "-D", d.dir, "-o", out, "--json"}, 600));
	if (!r.succeeded())
		return fail(ExitCode::failure, "bpfckpt core -D {} failed (status {:#x}):\n{}", d.dir, r.status, r.output);
	Json j = BCK_TRY(last_json(r, "bpfckpt core"));
	CoreRun run{r.wall_us, j.value("time_us", 0.0)};
	for (const Json& c : j.at("cores"))
		run.bytes_written += c.value("bytes_written", uint64_t(0));
	return run;
}

// The page blob copied into a new file in 8 MiB preads and writes: the least a core of it can cost.
Result<double> time_blob_copy(const Dumped& d, const std::string& dst, Buffer& chunk)
{
	auto t0 = Clock::now();
	UniqueFd in(::open(d.pages_blob.c_str(), O_RDONLY | O_CLOEXEC));
	UniqueFd out(::open(dst.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
	if (!in || !out)
		return fail_sys(errno, "open {} or {}", d.pages_blob, dst);
	for (;;) {
		ssize_t n = ::read(in.get(), chunk.data(), chunk.size());
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail_sys(errno, "read {}", d.pages_blob);
		if (n == 0)
			break;
		BCK_CHECK(context(write_all(out.get(), chunk.data(), size_t(n)), "{}", dst));
	}
	return us_since(t0);
}

// The same bytes written from our buffer into a new file: what writing them costs at least.
Result<double> time_plain_write(const Buffer& src, const std::string& path)
{
	auto t0 = Clock::now();
	BCK_CHECK(bench::write_file(src.data(), src.size(), path, bench::WriteMode::cached));
	return us_since(t0);
}

Result<double> time_load_image(const Dumped& d)
{
	auto t0 = Clock::now();
	BCK_TRY(image::load_image(d.dir));
	return us_since(t0);
}

void report(const Samples& s, uint64_t bytes, Report& rep)
{
	double wall = s.med("core.wall"), own = s.med("core.time_us"), load = s.med("load_image");
	double plain = s.med("plain_write"), copy = s.med("blob_copy"), mem = s.med("memcpy");
	double written = s.med("core.bytes_written");
	double writing = std::max(1.0, own - load);  // the command's time after the image is loaded
	rep.info("core.image_bytes", double(bytes >> 20), "MiB");
	rep.info("core.bytes_written", written / double(1 << 20), "MiB");
	rep.info("core.wall", wall / 1e3, "ms");
	rep.info("core.rate", gbps(written, wall), "GB/s");
	rep.ratio("core.time", own / 1e3, "ms", own / wall, "core time_us vs wall");
	rep.ratio("core.load_image", load / 1e3, "ms", load / own, "in-process load_image (checksums) vs core time_us");
	rep.ratio("core.writing", writing / 1e3, "ms", writing / own, "time_us - load_image vs core time_us");
	rep.info("core.writing_rate", gbps(written, writing), "GB/s");
	rep.info("limit.plain_write", plain / 1e3, "ms");
	rep.info("limit.plain_write_rate", gbps(bytes, plain), "GB/s");
	rep.info("limit.blob_copy", copy / 1e3, "ms");
	rep.info("limit.blob_copy_rate", gbps(bytes, copy), "GB/s");
	rep.info("limit.memcpy", mem / 1e3, "ms");
	rep.info("limit.memcpy_rate", gbps(bytes, mem), "GB/s");
	rep.ratio("ratio.wall_vs_plain_write", wall / 1e3, "ms", wall / plain, "core wall vs plain write");
	rep.ratio("ratio.writing_vs_plain_write", writing / 1e3, "ms", writing / plain,
		  "core writing (after load) vs plain write");
	rep.ratio("ratio.writing_vs_blob_copy", writing / 1e3, "ms", writing / copy,
		  "core writing (after load) vs pread+write of the blob");
	rep.ratio("ratio.wall_vs_memcpy", wall / 1e3, "ms", wall / mem, "core wall vs memcpy");
}

Status run_all(const Config& cfg, Report& rep)
{
	size_t bytes = cfg.mem_mib << 20;
	WorkDir work = BCK_TRY(WorkDir::create(kWorkTag));
	Dumped d = BCK_TRY(dump_target(work, cfg.mem_mib));
	auto [src, dst] = BCK_TRY(fill_buffers(bytes));
	Buffer chunk = BCK_TRY(Buffer::map(8 << 20));
	std::string out = work.path("cores"), file = work.path("plain.bin");

	Samples s;
	for (int round = -1; round < cfg.rounds; round++) {  // -1: warm-up
		progress_round("core", round);
		s.recording = round >= 0;
		BCK_CHECK(check_stop());
		BCK_CHECK(prewarm(work, src, bytes));
		CoreRun c = BCK_TRY(run_core(d, out));
		s.add("core.wall", c.wall_us);
		s.add("core.time_us", c.time_us);
		s.add("core.bytes_written", double(c.bytes_written));
		WorkDir::discard(out);
		s.add("load_image", BCK_TRY(time_load_image(d)));
		BCK_CHECK(prewarm(work, src, bytes));
		s.add("plain_write", BCK_TRY(time_plain_write(src, file)));
		WorkDir::discard(file);
		BCK_CHECK(prewarm(work, src, bytes));
		s.add("blob_copy", BCK_TRY(time_blob_copy(d, file, chunk)));
		WorkDir::discard(file);
		s.add("memcpy", time_memcpy(dst, src));
	}
	report(s, d.blob_bytes ? d.blob_bytes : bytes, rep);
	return {};
}

constexpr bench::Benchmark kBenchmark{.name = "bench_core",
				      .command = "core",
				      .quick_sizes = "256 MiB",
				      .why_root = "the dump of the target (BPF iterators, ptrace)"};

}  // namespace

int main(int argc, char** argv) { return bench::run_benchmark<Config>(argc, argv, kBenchmark, run_all); }
