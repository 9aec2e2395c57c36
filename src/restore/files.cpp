#include "restore/files.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "common/fs.h"
#include "image/image_dir.h"

namespace bpfckpt::restore {

namespace {

// Flags open(2) must not see again: the file exists, and creating or truncating it would lose data.
constexpr int kOpenOnlyFlags = O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY;

// Regular files and directories are found through the lookup (under --root, and checked there); devices are this
// machine's own, by path.
Result<int> open_regular(const image::File& f, const FileLookup& look)
{
	int flags = int(f.flags) & ~kOpenOnlyFlags;
	int fd;
	if (f.kind == "chardev") {
		fd = ::open(f.path.c_str(), flags | O_CLOEXEC);
		if (fd < 0)
			return fail_sys(errno, "file {}: open", f.path);
	} else {
		fd = BCK_TRY(look.open(identity_of(f, look.has_root()), flags)).fd.release();
	}
	if (f.kind == "regular" && lseek(fd, off_t(f.pos), SEEK_SET) < 0) {
		int e = errno;
		close(fd);
		return fail_sys(e, "file {}: seek to {}", f.path, f.pos);
	}
	return fd;
}

// A new pipe with the saved capacity and the saved bytes back in it.
Result<std::pair<int, int>> make_pipe(const image::Pipe& p, const std::string& dir)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return fail_sys(errno, "pipe:[{}]: pipe2", p.ino);
	if (p.capacity && fcntl(fds[1], F_SETPIPE_SZ, int(p.capacity)) < 0)
		return fail_sys(errno, "pipe:[{}]: set capacity {}", p.ino, p.capacity);
	std::string bytes = BCK_TRY(image::read_blob_ref(dir, p.data));
	BCK_CHECK(context(write_all(fds[1], bytes.data(), bytes.size()), "pipe:[{}]: write back {} bytes", p.ino,
			  bytes.size()));
	return std::make_pair(fds[0], fds[1]);
}

// An external file stands for something outside the image: what --inherit-fd names for its key, or else
// restore's own stdin (read ends) or stdout (write ends), as for a shell's pipes and terminals.
int external_fd(const image::File& f, const std::map<std::string, int>& inherit)
{
	if (auto it = inherit.find(f.external_key); it != inherit.end())
		return it->second;
	return (f.flags & O_ACCMODE) == O_RDONLY ? STDIN_FILENO : STDOUT_FILENO;
}

// Shared memory comes back as one object that every process maps again: a memfd of the same name, or shared
// anonymous memory (whose /proc/self/map_files entry gives an fd to the very object, "/dev/zero (deleted)").
Result<int> make_shmem(const image::Shmem& obj, const std::string& dir)
{
	UniqueFd fd;
	if (obj.kind == "memfd") {
		std::string name = obj.path.substr(7);  // "/memfd:"
		if (name.ends_with(" (deleted)"))
			name.resize(name.size() - 10);
		fd.reset(memfd_create(name.c_str(), MFD_CLOEXEC));
		if (!fd || ftruncate(fd.get(), off_t(obj.size)) != 0)
			return fail_sys(errno, "shared memory {}: memfd_create", obj.path);
	} else {
		void* m = mmap(nullptr, obj.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			return fail_sys(errno, "shared memory {}: mmap {} bytes", obj.path, obj.size);
		auto start = reinterpret_cast<uint64_t>(m);
		fd.reset(::open(fmt::format("/proc/self/map_files/{:x}-{:x}", start, start + obj.size).c_str(),
				O_RDWR | O_CLOEXEC));
		int e = errno;
		munmap(m, obj.size);
		if (!fd)
			return fail_sys(e, "shared memory {}: open its map_files entry", obj.path);
	}
	UniqueFd blob(::open((dir + "/" + obj.blob).c_str(), O_RDONLY | O_CLOEXEC));
	if (!obj.pages.empty() && !blob)
		return fail_sys(errno, "open blob {}", obj.blob);
	std::vector<char> buf(1 << 20);
	for (const image::PageRun& r : obj.pages)
		for (uint64_t done = 0; done < r.npages * image::kPageSize;) {
			size_t n = size_t(std::min<uint64_t>(buf.size(), r.npages * image::kPageSize - done));
			n = size_t(std::min<uint64_t>(n, obj.size - std::min(obj.size, r.start + done)));
			if (n == 0)
				break;
			if (pread(blob.get(), buf.data(), n, off_t(r.blob_offset + done)) != ssize_t(n) ||
			    pwrite(fd.get(), buf.data(), n, off_t(r.start + done)) != ssize_t(n))
				return fail_sys(errno ? errno : EIO, "shared memory {}: fill at {}", obj.path, r.start + done);
			done += n;
		}
	return fd.release();
}

}  // namespace

Result<int> move_high(int fd, int base)
{
	int hi = fcntl(fd, F_DUPFD_CLOEXEC, base);
	int e = errno;
	close(fd);
	if (hi < 0)
		return fail_sys(e, "move fd above {}", base);
	return hi;
}

Result<MasterFiles> open_master_files(const image::Image& img, const std::string& dir,
				      const std::map<std::string, int>& inherit, const FileLookup& look)
{
	MasterFiles mf;
	int max_fd = 2;
	for (const auto& p : img.processes)
		for (const auto& fd : p.fds)
			max_fd = std::max(max_fd, int(fd.fd));
	mf.base = max_fd + 64;
	rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rlim_t(mf.base) + img.files.size() * 2 + 1024 > rl.rlim_cur) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rlim_t(mf.base) + img.files.size() * 2 + 1024 > rl.rlim_cur)
			return fail(ExitCode::failure, "fd {} is above what RLIMIT_NOFILE ({}) allows", max_fd, rl.rlim_cur);
	}

	std::map<uint64_t, std::pair<int, int>> pipes;
	for (const image::Pipe& p : img.pipes) {
		auto [r, w] = BCK_TRY(make_pipe(p, dir));
		pipes[p.ino] = {BCK_TRY(move_high(r, mf.base)), BCK_TRY(move_high(w, mf.base))};
		mf.all.push_back(pipes[p.ino].first);
		mf.all.push_back(pipes[p.ino].second);
	}
	for (const image::Shmem& obj : img.shmem) {
		mf.by_shmem.push_back(BCK_TRY(move_high(BCK_TRY(make_shmem(obj, dir)), mf.base)));
		mf.all.push_back(mf.by_shmem.back());
	}
	mf.by_file.assign(img.files.size(), -1);
	for (const image::File& f : img.files) {
		int fd;
		if (f.external) {
			int ours = dup(external_fd(f, inherit));
			if (ours < 0)
				return fail_sys(errno, "external file {} ({}): our fd {}", f.id, f.external_key,
						external_fd(f, inherit));
			fd = BCK_TRY(move_high(ours, mf.base));
		} else if (f.kind == "pipe") {
			auto it = pipes.find(f.pipe.value_or(0));
			if (it == pipes.end())
				return fail(ExitCode::bad_image, "file {}: pipe:[{}] is not in the image", f.id,
					    f.pipe.value_or(0));
			bool reader = (f.flags & O_ACCMODE) == O_RDONLY;
			fd = BCK_TRY(move_high(dup(reader ? it->second.first : it->second.second), mf.base));
			if (fcntl(fd, F_SETFL, int(f.flags) & (O_NONBLOCK | O_APPEND)) != 0)
				return fail_sys(errno, "pipe:[{}]: set flags", *f.pipe);
		} else if (f.kind == "memfd") {
			auto obj = std::find_if(img.shmem.begin(), img.shmem.end(),
						[&](const auto& o) { return o.dev == f.dev && o.ino == f.ino; });
			if (obj == img.shmem.end())
				return fail(ExitCode::bad_image, "file {} ({}): its memfd contents are not in the image", f.id,
					    f.path);
			fd = BCK_TRY(move_high(dup(mf.by_shmem[obj->id]), mf.base));
			if (lseek(fd, off_t(f.pos), SEEK_SET) < 0)
				return fail_sys(errno, "file {}: seek", f.path);
		} else if (f.kind == "regular" || f.kind == "directory" || f.kind == "chardev") {
			fd = BCK_TRY(move_high(BCK_TRY(open_regular(f, look)), mf.base));
		} else {
			return fail(ExitCode::unsupported, "file {} ({}): restoring a {} is not supported", f.id, f.path,
				    f.kind);
		}
		mf.by_file[f.id] = fd;
		mf.all.push_back(fd);
	}
	return mf;
}

Status install_fds(const image::Process& p, const MasterFiles& mf, const std::vector<int>& keep)
{
	for (const image::Fd& fd : p.fds) {
		int src = mf.by_file.at(fd.file);
		if (dup3(src, int(fd.fd), fd.cloexec ? O_CLOEXEC : 0) < 0)
			return fail_sys(errno, "pid {} fd {}: dup3", p.pid, fd.fd);
	}
	// Everything else below the master base that is not a saved fd must go (inherited from bpfckpt itself).
	std::vector<bool> wanted(size_t(mf.base), false);
	for (const image::Fd& fd : p.fds)
		wanted[fd.fd] = true;
	for (int fd = 0; fd < mf.base; fd++)
		if (!wanted[size_t(fd)] && std::find(keep.begin(), keep.end(), fd) == keep.end())
			close(fd);
	for (int fd : mf.all)
		if (std::find(keep.begin(), keep.end(), fd) == keep.end())
			close(fd);
	return {};
}

Result<UniqueFd> open_mapped_file(const image::Vma& v, const FileLookup& look)
{
	bool writable_shared = v.shared && (v.prot & 2 /* PROT_WRITE */);
	// A different file under the same name would restore the wrong code or data: the lookup checks it.
	return std::move(BCK_TRY(look.open(identity_of(v), writable_shared ? O_RDWR : O_RDONLY)).fd);
}

}  // namespace bpfckpt::restore
