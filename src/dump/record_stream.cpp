// Parsing the iterators' record streams (layouts in include/bpfckpt/records.h). The stream comes from our own BPF
// programs, but a size that does not add up is still an error, never an out-of-bounds read.
#include <cstring>
#include <map>
#include <utility>

#include "dump/collector.h"

namespace bpfckpt::dump {

namespace {

class RecordCursor {
public:
	explicit RecordCursor(const std::string& b) : bytes_(b) {}

	// The next record header, or nullopt at the end; an error when the sizes do not add up.
	Result<std::optional<bck_hdr>> next()
	{
		if (pos_ == bytes_.size())
			return std::nullopt;
		bck_hdr h;
		if (bytes_.size() - pos_ < sizeof(h))
			return fail(ExitCode::failure, "iterator stream: truncated record header at byte {}", pos_);
		std::memcpy(&h, bytes_.data() + pos_, sizeof(h));
		if (h.size < sizeof(h) || h.size % 8 || h.size > bytes_.size() - pos_)
			return fail(ExitCode::failure, "iterator stream: bad record size {} at byte {}", h.size, pos_);
		cur_ = pos_;
		pos_ += h.size;
		return h;
	}

	template <typename T>
	Result<T> as(const bck_hdr& h) const
	{
		if (h.size != sizeof(T))
			return fail(ExitCode::failure, "iterator stream: record kind {} has size {}, expected {}", h.kind,
				    h.size, sizeof(T));
		T t;
		std::memcpy(&t, bytes_.data() + cur_, sizeof(T));
		return t;
	}

	std::string path(const bck_hdr& h) const
	{
		const char* p = bytes_.data() + cur_ + sizeof(h);
		return std::string(p, strnlen(p, h.size - sizeof(h)));
	}

private:
	const std::string& bytes_;
	size_t pos_ = 0;
	size_t cur_ = 0;
};

Status attach_task_path(RawTask& t, uint16_t tag, std::string path)
{
	switch (tag) {
	case BCK_PATH_EXE:
		t.exe = std::move(path), t.exe_seen = true;
		return {};
	case BCK_PATH_CWD:
		t.cwd = std::move(path), t.cwd_seen = true;
		return {};
	case BCK_PATH_ROOT:
		t.root = std::move(path), t.root_seen = true;
		return {};
	}
	return fail(ExitCode::failure, "iterator stream: task path with tag {}", tag);
}

// A path the iterator emitted once per run for every task that shares it (records.h, bck_path_id) is given to
// each of them here. An identity names one path whatever it is to a task (the cwd of one, the root of another).
Status share_task_paths(std::vector<RawTask>& tasks)
{
	using Key = std::pair<uint64_t, uint64_t>;
	std::map<Key, const std::string*> emitted;
	auto each_path = [](RawTask& t, auto&& f) -> Status {
		BCK_CHECK(f(t.rec.exe_path, t.exe, t.exe_seen));
		BCK_CHECK(f(t.rec.cwd_path, t.cwd, t.cwd_seen));
		return f(t.rec.root_path, t.root, t.root_seen);
	};
	for (RawTask& t : tasks)
		BCK_CHECK(each_path(t, [&](const bck_path_id& id, std::string& path, bool seen) -> Status {
			if (seen && id.dentry)
				emitted.emplace(Key{id.mnt, id.dentry}, &path);
			return {};
		}));
	for (RawTask& t : tasks)
		BCK_CHECK(each_path(t, [&](const bck_path_id& id, std::string& path, bool& seen) -> Status {
			if (seen || !id.dentry)
				return {};
			auto it = emitted.find(Key{id.mnt, id.dentry});
			if (it == emitted.end())
				return fail(ExitCode::failure, "iterator stream: task {} refers to a path not emitted", t.rec.tid);
			path = *it->second;
			seen = true;
			return {};
		}));
	return {};
}

}  // namespace

Result<std::vector<RawTask>> parse_task_stream(const std::string& bytes)
{
	std::vector<RawTask> out;
	RecordCursor c(bytes);
	for (;;) {
		auto h = BCK_TRY(c.next());
		if (!h)
			break;
		if (h->kind == BCK_REC_TASK) {
			out.emplace_back();
			out.back().rec = BCK_TRY(c.as<bck_task>(*h));
			continue;
		}
		if (out.empty())
			return fail(ExitCode::failure, "iterator stream: record kind {} before any task", h->kind);
		RawTask& t = out.back();
		switch (h->kind) {
		case BCK_REC_SIGACTIONS:
			t.sigactions = BCK_TRY(c.as<bck_sigactions>(*h));
			break;
		case BCK_REC_POSIX_TIMER:
			t.timers.push_back(BCK_TRY(c.as<bck_posix_timer>(*h)));
			break;
		case BCK_REC_PATH:
			BCK_CHECK(attach_task_path(t, h->tag, c.path(*h)));
			break;
		default:
			return fail(ExitCode::failure, "iterator stream: unexpected record kind {} in task stream", h->kind);
		}
	}
	BCK_CHECK(share_task_paths(out));
	return out;
}

template <typename Raw, typename Rec>
static Result<std::vector<Raw>> parse_with_paths(const std::string& bytes, uint16_t kind, uint16_t path_tag)
{
	std::vector<Raw> out;
	RecordCursor c(bytes);
	for (;;) {
		auto h = BCK_TRY(c.next());
		if (!h)
			break;
		if (h->kind == kind) {
			out.emplace_back();
			out.back().rec = BCK_TRY(c.template as<Rec>(*h));
		} else if (h->kind == BCK_REC_PATH && h->tag == path_tag && !out.empty()) {
			out.back().path = c.path(*h);
			out.back().path_seen = true;
		} else {
			return fail(ExitCode::failure, "iterator stream: unexpected record kind {} tag {}", h->kind, h->tag);
		}
	}
	return out;
}

Result<std::vector<RawFile>> parse_file_stream(const std::string& bytes)
{
	return parse_with_paths<RawFile, bck_file>(bytes, BCK_REC_FILE, BCK_PATH_FILE);
}

Result<std::vector<RawVma>> parse_vma_stream(const std::string& bytes)
{
	auto vmas = BCK_TRY((parse_with_paths<RawVma, bck_vma>(bytes, BCK_REC_VMA, BCK_PATH_VMA)));
	std::map<std::pair<uint32_t, uint64_t>, const RawVma*> by_file;  // (dev, ino) -> the VMA that has the path
	for (RawVma& v : vmas) {
		auto key = std::make_pair(v.rec.dev, uint64_t(v.rec.ino));
		if (!(v.rec.flags & BCK_VMA_F_PATH_CACHED)) {
			if (v.path_seen)
				by_file.emplace(key, &v);
			continue;
		}
		auto it = by_file.find(key);
		if (it == by_file.end())
			return fail(ExitCode::failure, "iterator stream: vma {:x} refers to a path not emitted", v.rec.start);
		v.path = it->second->path;
		v.path_seen = true;
	}
	return vmas;
}

}  // namespace bpfckpt::dump
