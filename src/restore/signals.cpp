#include "restore/signals.h"

#include <signal.h>

#include <cstring>

#include "image/image_dir.h"
#include "image/validate.h"

namespace bpfckpt::restore {

namespace {

Status append_queue(const std::string& dir, const image::BlobRef& ref, uint32_t tid, uint32_t pid,
		    std::vector<QueuedSignal>& out)
{
	std::string bytes = BCK_TRY(context(image::read_blob_ref(dir, ref), "pid {}: queued signals", pid));
	for (size_t off = 0; off + image::kSiginfoBytes <= bytes.size(); off += image::kSiginfoBytes) {
		QueuedSignal q{tid, 0, bytes.substr(off, image::kSiginfoBytes)};
		std::memcpy(&q.signo, q.info.data(), sizeof(q.signo));  // si_signo is siginfo_t's first field
		if (q.signo < 1 || q.signo > 64)
			return fail(ExitCode::bad_image, "pid {}: queued signal {} of {} out of range 1..64", pid, q.signo,
				    tid ? fmt::format("thread {}", tid) : std::string("the process"));
		if (q.signo != SIGKILL && q.signo != SIGSTOP)
			out.push_back(std::move(q));
	}
	return {};
}

}  // namespace

Result<std::vector<QueuedSignal>> read_queued_signals(const std::string& dir, const image::Process& p)
{
	std::vector<QueuedSignal> out;
	BCK_CHECK(append_queue(dir, p.shared_siginfo, 0, p.pid, out));
	for (const image::Thread& t : p.threads)
		BCK_CHECK(append_queue(dir, t.siginfo, t.tid, p.pid, out));
	return out;
}

uint64_t signals_with_siginfo(const std::vector<QueuedSignal>& queued, uint32_t queue)
{
	uint64_t mask = 0;
	for (const QueuedSignal& q : queued)
		if (q.tid == queue)
			mask |= 1ull << (q.signo - 1);
	return mask;
}

}  // namespace bpfckpt::restore
