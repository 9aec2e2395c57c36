#include "core/write_cores.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "common/clock.h"
#include "common/fd.h"
#include "common/log.h"
#include "core/elf_core.h"
#include "image/validate.h"

namespace bpfckpt::core {

namespace {

Status make_out_dir(const std::string& out)
{
	if (::mkdir(out.c_str(), 0700) == 0)
		return {};
	if (errno != EEXIST)
		return fail_errno(ExitCode::io, errno, "{}: create the output directory", out);
	struct stat st {};
	if (::stat(out.c_str(), &st) != 0)
		return fail_errno(ExitCode::io, errno, "{}: stat", out);
	if (!S_ISDIR(st.st_mode))
		return fail(ExitCode::io, "{}: exists and is not a directory", out);
	return {};
}

// A core being written under a temporary name in OUT (mode 0600, from mkstemp): removed unless publish() renamed it.
class TempCore {
public:
	static Result<TempCore> create(const std::string& out, uint32_t pid)
	{
		std::string path = fmt::format("{}/.core.{}.XXXXXX", out, pid);
		int fd = ::mkostemp(path.data(), O_CLOEXEC);
		if (fd < 0)
			return fail_errno(ExitCode::io, errno, "{}: create a file", out);
		return TempCore(UniqueFd(fd), std::move(path));
	}
	TempCore(TempCore&& o) noexcept : fd_(std::move(o.fd_)), path_(std::exchange(o.path_, {})) {}
	TempCore& operator=(TempCore&&) = delete;
	~TempCore()
	{
		if (!path_.empty())
			::unlink(path_.c_str());
	}

	int fd() const { return fd_.get(); }
	Status publish(const std::string& dest)
	{
		if (::rename(path_.c_str(), dest.c_str()) != 0)
			return fail_errno(ExitCode::io, errno, "rename {} to {}", path_, dest);
		path_.clear();
		return {};
	}

private:
	TempCore(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
	UniqueFd fd_;
	std::string path_;
};

std::string pid_list(const image::Image& img)
{
	std::string s;
	for (size_t i = 0; i < img.processes.size() && i < 10; i++)
		s += fmt::format("{}{}", i ? ", " : "", img.processes[i].pid);
	return img.processes.size() > 10 ? s + ", ..." : s;
}

// The processes to write, zombies set aside (their memory and registers are gone).
Result<std::vector<const image::Process*>> select_processes(const image::Image& img, const CoreOptions& opt,
							      CoresReport& rep)
{
	std::vector<const image::Process*> out;
	if (opt.pid) {
		auto it = std::ranges::find(img.processes, *opt.pid, &image::Process::pid);
		if (it == img.processes.end())
			return fail(ExitCode::no_target, "pid {}: not in the image {} (its processes: {})", *opt.pid,
				    opt.dir, pid_list(img));
		if (it->state == "zombie")
			return fail(ExitCode::no_target, "pid {}: a zombie in the image {}: no memory or registers to "
				    "write a core from", *opt.pid, opt.dir);
		out.push_back(&*it);
		return out;
	}
	for (const image::Process& p : img.processes) {
		if (p.state == "zombie")
			rep.zombies.push_back(p.pid);
		else
			out.push_back(&p);
	}
	return out;
}

Result<CoreResult> write_one(CoreWriter& writer, const image::Process& p, const std::string& out)
{
	CoreResult r{p.pid, fmt::format("{}/core.{}", out, p.pid), p.exe, p.threads.size(), p.vmas.size()};
	TempCore tmp = BCK_TRY(TempCore::create(out, p.pid));
	CoreFileStats st = BCK_TRY(context(writer.write(tmp.fd(), p), "{}", r.path));
	BCK_CHECK(tmp.publish(r.path));
	r.size = st.size;
	r.bytes_written = st.bytes_written;
	return r;
}

}  // namespace

Result<CoresReport> write_cores(const CoreOptions& opt)
{
	double t0 = now_s();
	image::Chain chain = BCK_TRY(image::Chain::load(opt.dir, true));
	const image::Image& img = chain.newest();
	log::debug("{}: image (and {} parent(s)) loaded and checked in {:.0f} ms", opt.dir, chain.depth() - 1,
		   (now_s() - t0) * 1e3);
	CoresReport rep;
	std::vector<const image::Process*> todo = BCK_TRY(select_processes(img, opt, rep));
	BCK_CHECK(make_out_dir(opt.out));
	auto writer = BCK_TRY(CoreWriter::create(chain));
	for (const image::Process* p : todo) {
		double t1 = now_s();
		rep.cores.push_back(BCK_TRY(context(write_one(*writer, *p, opt.out), "pid {}", p->pid)));
		log::debug("{}: written in {:.0f} ms", rep.cores.back().path, (now_s() - t1) * 1e3);
	}
	rep.seconds = now_s() - t0;
	return rep;
}

}  // namespace bpfckpt::core
