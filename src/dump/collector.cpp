#include "dump/collector.h"

#include <bpf/bpf.h>
#include <unistd.h>

#include <cstdlib>

#include "common/fd.h"
#include "common/fs.h"
#include "dump/bpf_iters.h"

namespace bpfckpt::dump {

namespace {

// A BPF iterator link: every iterator fd created from it runs the program over all tasks anew.
using Link = UniqueFd;

Result<Link> attach(int prog_fd, const char* what)
{
	int fd = bpf_link_create(prog_fd, 0, BPF_TRACE_ITER, nullptr);
	if (fd < 0)
		return fail_sys(errno, "attach BPF iterator {}", what);
	return Link(fd);
}

Result<std::string> read_iter(const Link& link, const char* what)
{
	UniqueFd fd(bpf_iter_create(link.get()));
	if (!fd)
		return fail_sys(errno, "create BPF iterator {}", what);
	// Straight into the result, not through a bounce buffer: a stream of 1000 processes is megabytes.
	constexpr size_t kFirst = size_t(256) << 10, kMinRead = size_t(64) << 10;
	std::string out(kFirst, '\0');
	size_t len = 0;
	for (;;) {
		if (out.size() - len < kMinRead)
			out.resize(out.size() * 2);
		ssize_t n = ::read(fd.get(), out.data() + len, out.size() - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail_sys(errno, "read BPF iterator {}", what);
		}
		if (n == 0) {
			out.resize(len);
			return out;
		}
		len += size_t(n);
	}
}

// The targets bitmap's size: one bit per pid up to pid_max (32768 here; up to 4194304 elsewhere: 512 KiB).
Result<uint32_t> target_words()
{
	std::string text = BCK_TRY(read_file("/proc/sys/kernel/pid_max"));
	long pid_max = std::strtol(text.c_str(), nullptr, 10);
	if (pid_max <= 0 || pid_max > (long(1) << 22))
		return fail(ExitCode::failure, "/proc/sys/kernel/pid_max: {:?} is not a pid_max", text);
	return uint32_t((pid_max + 63) / 64);
}

}  // namespace

struct Collector::Impl {
	bck_iters* iters = nullptr;
	Link task_link, file_link, vma_link;
	std::vector<uint64_t> targets;  // what the targets bitmap holds, word by word

	~Impl()
	{
		task_link.reset();
		file_link.reset();
		vma_link.reset();
		bck_iters_destroy(iters);
	}

	// One .bss for all three programs: the task/file/vma iterators check the same filter.
	void set_filter(uint32_t mode, uint32_t tgid, uint64_t cgroup) { bck_iters_set_filter(iters, mode, tgid, cgroup); }
};

Collector::Collector(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Collector::~Collector() = default;

Result<std::unique_ptr<Collector>> Collector::open()
{
	auto impl = std::make_unique<Impl>();
	uint32_t words = BCK_TRY(target_words());
	impl->iters = bck_iters_load(words);
	if (!impl->iters)
		return fail_sys(errno, "load the BPF iterators");
	impl->targets.assign(words, 0);
	impl->task_link = BCK_TRY(attach(bck_iters_prog_fd(impl->iters, BCK_ITER_TASK), "task"));
	impl->file_link = BCK_TRY(attach(bck_iters_prog_fd(impl->iters, BCK_ITER_FILE), "task_file"));
	impl->vma_link = BCK_TRY(attach(bck_iters_prog_fd(impl->iters, BCK_ITER_VMA), "task_vma"));
	return std::unique_ptr<Collector>(new Collector(std::move(impl)));
}

Result<std::vector<RawTask>> Collector::tasks_below(pid_t root)
{
	impl_->set_filter(BCK_FILTER_DESCENDANTS, uint32_t(root), 0);
	return parse_task_stream(BCK_TRY(read_iter(impl_->task_link, "task")));
}

Result<std::vector<RawTask>> Collector::tasks_in_cgroup(uint64_t cgroup_id)
{
	impl_->set_filter(BCK_FILTER_CGROUP, 0, cgroup_id);
	return parse_task_stream(BCK_TRY(read_iter(impl_->task_link, "task")));
}

Status Collector::set_targets(const std::vector<pid_t>& tgids)
{
	std::vector<uint64_t> bits(impl_->targets.size(), 0);
	for (pid_t tgid : tgids) {
		if (tgid <= 0 || size_t(tgid) / 64 >= bits.size())
			return fail(ExitCode::failure, "pid {}: above pid_max when the BPF iterators were loaded", tgid);
		bits[size_t(tgid) / 64] |= uint64_t(1) << (tgid % 64);
	}
	// Only the words that change, in one syscall: one per 64 neighbouring pids.
	std::vector<uint32_t> keys;
	std::vector<uint64_t> values;
	for (size_t w = 0; w < bits.size(); w++)
		if (bits[w] != impl_->targets[w]) {
			keys.push_back(uint32_t(w));
			values.push_back(bits[w]);
		}
	uint32_t n = uint32_t(keys.size());
	if (n && bpf_map_update_batch(bck_iters_targets_fd(impl_->iters), keys.data(), values.data(), &n, nullptr) != 0)
		return fail_sys(errno, "set the BPF targets bitmap for {} pids", tgids.size());
	impl_->targets = std::move(bits);
	impl_->set_filter(BCK_FILTER_TGID_SET, 0, 0);
	return {};
}

Result<std::vector<RawTask>> Collector::tasks()
{
	impl_->set_filter(BCK_FILTER_TGID_SET, 0, 0);
	return parse_task_stream(BCK_TRY(read_iter(impl_->task_link, "task")));
}

Result<std::vector<RawFile>> Collector::files()
{
	return parse_file_stream(BCK_TRY(read_iter(impl_->file_link, "task_file")));
}

Result<std::vector<RawVma>> Collector::vmas()
{
	return parse_vma_stream(BCK_TRY(read_iter(impl_->vma_link, "task_vma")));
}

}  // namespace bpfckpt::dump
