#include "image/flatten.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>
#include <vector>

#include "common/fd.h"
#include "common/fs.h"
#include "image/chain.h"
#include "image/image_dir.h"
#include "image/json.h"
#include "image/validate.h"

namespace bpfckpt::image {

namespace {

namespace fs = std::filesystem;

constexpr size_t kCopyChunk = 1u << 20;

// A temporary directory beside the image, removed with what it holds unless it was swapped in (then it holds the
// old image, which goes too).
class TempImageDir {
public:
	static Result<TempImageDir> create(const std::string& dir)
	{
		fs::path d(dir);
		std::string tmpl = (d.parent_path() / ("." + d.filename().string() + ".flatten-XXXXXX")).string();
		if (!mkdtemp(tmpl.data()))
			return fail_sys(errno, "image {}: create a temporary directory beside it", dir);
		if (chmod(tmpl.c_str(), 0700) != 0) {
			int e = errno;
			rmdir(tmpl.c_str());
			return fail_sys(e, "image {}: chmod {}", dir, tmpl);
		}
		return TempImageDir(tmpl);
	}
	TempImageDir(TempImageDir&& o) noexcept : path_(std::exchange(o.path_, {})) {}
	TempImageDir(const TempImageDir&) = delete;
	~TempImageDir()
	{
		std::error_code ec;
		if (!path_.empty())
			fs::remove_all(path_, ec);
	}
	const std::string& path() const { return path_; }

private:
	explicit TempImageDir(std::string p) : path_(std::move(p)) {}
	std::string path_;
};

Result<UniqueFd> create_file(const std::string& path)
{
	UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
	if (!fd)
		return fail_sys(errno, "create {}", path);
	return fd;
}

// A blob copied as it is (threads, pipes, shared memory): copy_file_range, so that a filesystem that can share
// extents does.
Status copy_blob(const std::string& from, const std::string& to)
{
	UniqueFd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
	if (!in)
		return fail_sys(errno, "open {}", from);
	UniqueFd out = BCK_TRY(create_file(to));
	for (;;) {
		ssize_t n = copy_file_range(in.get(), nullptr, out.get(), nullptr, 1u << 30, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail_sys(errno, "copy {} to {}", from, to);
		if (n == 0)
			return {};
	}
}

// Page blobs still named by something other than a pages_blob (a thread's registers or queued signals, a pipe, a
// shared memory object) must be kept; the others are replaced by the flattened blobs.
std::set<std::string> blobs_named_elsewhere(const Image& img)
{
	std::set<std::string> names;
	for (const Process& p : img.processes) {
		names.insert(p.shared_siginfo.blob);
		for (const Thread& t : p.threads)
			names.insert({t.regs.xstate.blob, t.regs.fpregs.blob, t.siginfo.blob});
	}
	for (const Pipe& pipe : img.pipes)
		names.insert(pipe.data.blob);
	for (const Shmem& s : img.shmem)
		names.insert(s.blob);
	return names;
}

// Copies each resolved run's bytes into one new page blob and returns the vma's new page runs, merged where the
// runs came out adjacent.
class PageCopier {
public:
	explicit PageCopier(const Chain& chain) : chain_(chain), buf_(kCopyChunk) {}

	Status copy(const std::vector<ResolvedRun>& runs, BlobWriter& out, std::vector<PageRun>& pages)
	{
		for (const ResolvedRun& r : runs) {
			uint64_t at = out.offset();
			int fd = BCK_TRY(source(r));
			for (uint64_t done = 0, len = r.npages * kPageSize; done < len;) {
				size_t n = size_t(std::min<uint64_t>(buf_.size(), len - done));
				ssize_t got = pread(fd, buf_.data(), n, off_t(r.blob_offset + done));
				if (got < 0 && errno == EINTR)
					continue;
				if (got != ssize_t(n))
					return fail_errno(got < 0 ? exit_for_errno(errno) : ExitCode::bad_image,
							  got < 0 ? errno : 0, "{}: short read at {}", chain_.blob_path(r),
							  r.blob_offset + done);
				BCK_CHECK(out.write(buf_.data(), n));
				done += n;
			}
			if (!pages.empty() && pages.back().start + pages.back().npages * kPageSize == r.start &&
			    pages.back().blob_offset + pages.back().npages * kPageSize == at)
				pages.back().npages += r.npages;
			else
				pages.push_back({r.start, r.npages, at});
		}
		return {};
	}

private:
	Result<int> source(const ResolvedRun& r)
	{
		auto key = std::make_pair(r.level, r.process);
		auto it = fds_.find(key);
		if (it != fds_.end())
			return it->second.get();
		UniqueFd fd(::open(chain_.blob_path(r).c_str(), O_RDONLY | O_CLOEXEC));
		if (!fd)
			return fail_sys(errno, "open {}", chain_.blob_path(r));
		return fds_.emplace(key, std::move(fd)).first->second.get();
	}

	const Chain& chain_;
	std::vector<char> buf_;
	std::map<std::pair<uint32_t, uint32_t>, UniqueFd> fds_;
};

// A name for process p's new page blob: its old one when nothing else needs that, else pages-PID[-N].bin.
std::string page_blob_name(const Process& p, const std::set<std::string>& kept, std::set<std::string>& taken)
{
	if (!p.pages_blob.empty() && !kept.count(p.pages_blob) && taken.insert(p.pages_blob).second)
		return p.pages_blob;
	for (int n = 0;; n++) {
		std::string name = n ? fmt::format("pages-{}-{}.bin", p.pid, n) : fmt::format("pages-{}.bin", p.pid);
		if (!kept.count(name) && taken.insert(name).second)
			return name;
	}
}

// The flattened image in `tmp`: blobs that stay copied, page blobs rebuilt from the chain, index.json written.
Status build_flat(const Chain& chain, const std::string& tmp)
{
	Image img = chain.newest();
	std::set<std::string> kept = blobs_named_elsewhere(img);
	std::vector<Blob> blobs;
	for (const Blob& b : img.blobs)
		if (kept.count(b.name)) {
			BCK_CHECK(copy_blob(chain.newest_dir() + "/" + b.name, tmp + "/" + b.name));
			blobs.push_back(b);
		}
	std::set<std::string> taken;
	PageCopier copier(chain);
	for (Process& p : img.processes) {
		std::string name = page_blob_name(p, kept, taken);
		BlobWriter out(chain.newest_dir(), name, BCK_TRY(create_file(tmp + "/" + name)));
		for (Vma& v : p.vmas) {
			std::vector<PageRun> pages;
			BCK_CHECK(copier.copy(BCK_TRY(chain.resolve(p.pid, v.start, v.end)), out, pages));
			v.pages = std::move(pages);
			v.inherit = false;
			v.zero.clear();
		}
		if (out.offset() == 0) {
			unlink((tmp + "/" + name).c_str());
			p.pages_blob.clear();
			continue;
		}
		p.pages_blob = name;
		blobs.push_back(out.finish());
	}
	img.blobs = std::move(blobs);
	img.parent.reset();
	img.parent_id.clear();
	BCK_CHECK(write_file(tmp + "/index.json", to_json_value(img).dump(1, '\t') + "\n", 0600));
	// What was written must load as an image of its own before it replaces anything.
	BCK_CHECK(load_image_unverified(tmp));
	return {};
}

}  // namespace

Status flatten_image(const std::string& dir)
{
	Chain chain = BCK_TRY(Chain::load(dir, true));
	if (chain.depth() == 1)
		return {};
	const std::string& at = chain.newest_dir();
	TempImageDir tmp = BCK_TRY(TempImageDir::create(at));
	BCK_CHECK(context(build_flat(chain, tmp.path()), "flatten {}", at));
	BCK_CHECK(context(fsync_dir_files(tmp.path()), "flatten {}", at));
	// One step from the old image to the new: a reader sees either, never a mix or nothing.
	if (renameat2(AT_FDCWD, tmp.path().c_str(), AT_FDCWD, at.c_str(), RENAME_EXCHANGE) != 0)
		return fail_sys(errno, "flatten {}: exchange with {}", at, tmp.path());
	// tmp now holds the old image; its destructor removes it once the exchange is durable.
	return context(fsync_path(fs::path(at).parent_path().string()), "flatten {}", at);
}

}  // namespace bpfckpt::image
