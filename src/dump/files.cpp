#include "dump/files.h"

#include <fcntl.h>

#include <algorithm>
#include <set>

#include "bpfckpt/records.h"

namespace bpfckpt::dump {

namespace {

// FMODE_READ / FMODE_WRITE (include/linux/fs.h)
constexpr uint32_t kFmodeRead = 0x1;
constexpr uint32_t kFmodeWrite = 0x2;
constexpr uint16_t kAfUnix = 1;

// Character devices with no state of their own: reopened by path.
bool is_stateless_chardev(const std::string& p)
{
	static const std::set<std::string> known = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random",
						    "/dev/urandom"};
	return known.count(p) > 0;
}

bool is_terminal(const std::string& p)
{
	return p.rfind("/dev/pts/", 0) == 0 || p.rfind("/dev/tty", 0) == 0 || p == "/dev/console";
}

std::string anon_inode_name(const std::string& p)
{
	// "anon_inode:[eventfd]" -> "eventfd"; "anon_inode:inotify" -> "inotify"
	std::string s = p.substr(p.find(':') + 1);
	if (!s.empty() && s.front() == '[')
		s = s.substr(1, s.size() - 2);
	return s;
}

struct PipeEnds {
	std::set<uint64_t> readers, writers;  // open files (struct file ids) in the set
	uint32_t kernel_readers = 0, kernel_writers = 0;
};

Status classify(const RawFile& rf, image::File& f, const std::set<uint64_t>& socket_inos)
{
	const bck_file& r = rf.rec;
	uint32_t fmt = r.i_mode & BCK_S_IFMT;
	auto unsupported = [&](const std::string& what) {
		return fail(ExitCode::unsupported, "pid {} fd {}: {}: not supported", r.tgid, r.fd, what);
	};
	if (!rf.path_seen || rf.path.empty())
		return unsupported("path unresolvable (longer than 4096 bytes?)");
	if (rf.path.rfind("anon_inode:", 0) == 0)
		return unsupported(anon_inode_name(rf.path));
	switch (fmt) {
	case BCK_S_IFREG:
		if (rf.path.rfind("/memfd:", 0) == 0) {
			f.kind = "memfd";  // its contents are saved as a shared memory object (dump.cpp)
			return {};
		}
		if (rf.path.size() > 10 && rf.path.ends_with(" (deleted)"))
			return unsupported("unlinked file " + rf.path);
		f.kind = "regular";
		return {};
	case BCK_S_IFDIR:
		f.kind = "directory";
		return {};
	case BCK_S_IFCHR:
		f.kind = "chardev";
		if (is_stateless_chardev(rf.path))
			return {};
		if (is_terminal(rf.path)) {
			f.external = true;
			f.external_key = rf.path;
			return {};
		}
		return unsupported("character device " + rf.path);
	case BCK_S_IFIFO:
		f.kind = "pipe";
		if (rf.path.rfind("pipe:[", 0) != 0)
			return unsupported("named FIFO " + rf.path);
		f.pipe = r.ino;
		return {};
	case BCK_S_IFSOCK:
		f.kind = "socket";
		// A socket connected to something outside the dump (the parent shell, a logger) is external; one whose
		// peer is inside would need both ends recreated, which is not implemented yet.
		if (r.sock_family == kAfUnix && r.sock_peer_ino && !socket_inos.count(r.sock_peer_ino)) {
			f.external = true;
			f.external_key = fmt::format("socket:[{}]", r.ino);
			return {};
		}
		return unsupported(r.sock_family == kAfUnix ? "AF_UNIX socket within the dumped tree"
							    : fmt::format("socket of family {}", r.sock_family));
	}
	return unsupported(fmt::format("file {} of mode {:o}", rf.path, r.i_mode));
}

}  // namespace

Result<FileTable> build_files(const std::vector<RawFile>& raw)
{
	FileTable t;
	std::map<uint64_t, uint32_t> by_kernel_file;
	std::map<uint64_t, PipeEnds> pipes;
	std::set<uint64_t> socket_inos;
	for (const RawFile& rf : raw)
		if ((rf.rec.i_mode & BCK_S_IFMT) == BCK_S_IFSOCK)
			socket_inos.insert(rf.rec.ino);

	for (const RawFile& rf : raw) {
		const bck_file& r = rf.rec;
		auto [it, fresh] = by_kernel_file.emplace(r.file_id, uint32_t(t.files.size()));
		if (fresh) {
			image::File f;
			f.id = it->second;
			f.path = rf.path;
			f.flags = r.f_flags & ~uint32_t(O_CLOEXEC);  // close-on-exec is the fd's, not the file's
			f.pos = r.pos;
			f.dev = r.dev;
			f.ino = r.ino;
			f.rdev = r.rdev;
			f.mode = r.i_mode;
			f.size = r.size;
			f.mtime_sec = r.mtime_sec;
			f.mtime_nsec = r.mtime_nsec;
			BCK_CHECK(classify(rf, f, socket_inos));
			t.files.push_back(std::move(f));
			if (t.files.back().pipe) {
				PipeEnds& e = pipes[r.ino];
				if (r.f_mode & kFmodeRead)
					e.readers.insert(r.file_id);
				if (r.f_mode & kFmodeWrite)
					e.writers.insert(r.file_id);
				e.kernel_readers = r.pipe_readers;
				e.kernel_writers = r.pipe_writers;
				auto& h = t.pipes[r.ino];
				h.capacity = uint64_t(r.pipe_ring_size) * image::kPageSize;
				// Prefer a read end to peek through: tee() needs one.
				if (!h.pid || (!h.read_end && (r.f_mode & kFmodeRead)))
					h = {h.capacity, pid_t(r.tgid), r.fd, (r.f_mode & kFmodeRead) != 0};
			}
		}
		t.fds[pid_t(r.tgid)].push_back({r.fd, (r.flags & BCK_FILE_F_CLOEXEC) != 0, it->second});
	}

	// A pipe is internal when the set holds every open end the kernel counts; otherwise its other side is out
	// there (a shell, a logger) and restore must be told what to connect it to.
	for (auto& [ino, e] : pipes) {
		if (e.readers.size() == e.kernel_readers && e.writers.size() == e.kernel_writers)
			continue;
		t.pipes.erase(ino);
		for (image::File& f : t.files)
			if (f.pipe == ino) {
				f.external = true;
				f.external_key = fmt::format("pipe:[{}]", ino);
			}
	}
	for (auto& [pid, v] : t.fds)
		std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.fd < b.fd; });
	return t;
}

}  // namespace bpfckpt::dump
