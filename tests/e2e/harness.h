// e2e harness: start workloads (tests/workloads/README.md protocol), run the bpfckpt binary, look at /proc and at
// image directories. Every handle is an RAII guard: a test that fails half-way still kills and reaps what it started,
// unmounts what it mounted and removes what it created.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/temp_dir.h"

namespace e2e {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

int sys_pidfd_send_signal(int pidfd, int sig);
// Milliseconds until deadline, 0 once it has passed.
int ms_left(Clock::time_point deadline);
// Whether fd becomes readable within wait (EINTR retried).
bool poll_readable(int fd, std::chrono::milliseconds wait);

// Paths baked in by tests/CMakeLists.txt.
std::string bpfckpt_bin();
std::string workload_path(const std::string& name);
std::string source_dir();

bool ci();  // CI=true in the environment: a skip becomes a failure

// Skips the test locally, fails it under CI=true (a skip in CI hides a regression).
#define SKIP_OR_FAIL(why)                                                          \
	do {                                                                       \
		if (::e2e::ci())                                                   \
			GTEST_FAIL() << "CI=true and a requirement is missing: " << (why); \
		GTEST_SKIP() << (why);                                             \
	} while (0)

// Root plus the kernel features every dump needs (BTF for the iterators, pidfds).
std::optional<std::string> missing_requirement();
#define REQUIRE_ROOT_OR_SKIP()                                               \
	do {                                                                 \
		if (auto _why = ::e2e::missing_requirement())                \
			SKIP_OR_FAIL(*_why);                                 \
	} while (0)

// --- processes -------------------------------------------------------------------------------------------------------

// Where and how a workload starts.
struct StartOptions {
	std::chrono::milliseconds timeout = 60s;
	std::string cgroup_dir;    // a cgroup v2 directory the child joins before exec: what it forks is born there
	bool new_session = false;  // it leads a session of its own (setsid), as a service or a container's init does
};

// A workload process in its own process group, with a pidfd; the destructor kills the whole group and reaps it.
class PidFd;

class Workload {
public:
	Workload() = default;
	Workload(const Workload&) = delete;
	Workload& operator=(const Workload&) = delete;
	~Workload();

	// Starts `name` with `args`, waits for its READY line. On false, error() says why.
	bool start(const std::string& name, const std::vector<std::string>& args = {},
		   std::chrono::milliseconds timeout = 60s);
	bool start(const std::string& name, const std::vector<std::string>& args, const StartOptions& opt);
	// Sends SIGUSR1, reads the verdict line and waits for the exit. Returns the line ("PASS", "FAIL why", or a
	// description of what went wrong instead).
	std::string verify(std::chrono::milliseconds timeout = 30s);

	pid_t pid() const { return pid_; }
	int pidfd() const { return pidfd_; }
	const json& ready() const { return ready_; }
	const std::string& error() const { return error_; }
	bool exited(std::chrono::milliseconds wait = 0ms);  // pidfd readable: the process is dead (zombie or reaped)
	int wait_status() const { return status_; }        // valid once reaped
	void kill_all();
	// The next line it prints after READY (what a workload says on a signal other than SIGUSR1).
	bool read_line(std::string& line, std::chrono::milliseconds timeout);

private:
	bool reap(std::chrono::milliseconds timeout);

	pid_t pid_ = -1;
	int pidfd_ = -1;
	int out_ = -1;  // read end of the workload's stdout
	std::string buffered_;
	json ready_;
	std::vector<std::unique_ptr<PidFd>> descendants_;  // READY's "pids", killed with the workload
	std::string error_;
	bool reaped_ = false;
	int status_ = 0;
};

// A pidfd on a process we did not start (a workload's child): tells when it is gone.
class PidFd {
public:
	explicit PidFd(pid_t pid);
	~PidFd();
	PidFd(const PidFd&) = delete;
	PidFd& operator=(const PidFd&) = delete;
	bool valid() const { return fd_ >= 0; }
	bool exited(std::chrono::milliseconds wait = 0ms) const;
	void kill() const;

private:
	int fd_ = -1;
};

struct RunOptions {
	std::vector<std::pair<std::string, std::string>> env;  // added to the environment
	std::optional<uid_t> uid;                             // drop to this uid/gid (no groups) before exec
	std::string cgroup_dir;                               // a cgroup v2 directory to join before exec
	std::chrono::milliseconds timeout = 180s;
};

struct RunResult {
	int exit_code = -1;  // -1 when killed by a signal or timed out
	int term_signal = 0;
	bool timed_out = false;
	std::string out, err;
	std::string describe() const;  // for failure messages
};

// fork + exec of argv (with opt's env, uid and cgroup) leading its own process group, stdin /dev/null, stdout and
// stderr into new pipes whose read ends go to *out and *err. Returns the pid, or -1.
pid_t spawn_piped(const std::vector<std::string>& argv, const RunOptions& opt, int* out, int* err);

// A command running in its own process group; finish() collects its output. The destructor kills and reaps it.
class Command {
public:
	Command() = default;
	Command(const Command&) = delete;
	Command& operator=(const Command&) = delete;
	~Command();
	bool start(const std::vector<std::string>& argv, const RunOptions& opt = {});
	RunResult finish();
	pid_t pid() const { return pid_; }

private:
	pid_t pid_ = -1;
	int out_ = -1, err_ = -1;
	RunOptions opt_;
	std::chrono::steady_clock::time_point started_;
};

RunResult run(const std::vector<std::string>& argv, const RunOptions& opt = {});
RunResult run_bpfckpt(const std::vector<std::string>& args, const RunOptions& opt = {});

// Holds a PTRACE_SEIZE on a task; detaches (interrupt, wait, detach) on destruction.
class PtraceSeize {
public:
	explicit PtraceSeize(pid_t tid);
	~PtraceSeize();
	PtraceSeize(const PtraceSeize&) = delete;
	PtraceSeize& operator=(const PtraceSeize&) = delete;
	bool ok() const { return ok_; }
	void detach();

private:
	pid_t tid_;
	bool ok_ = false;
};

// --- files and mounts ------------------------------------------------------------------------------------------------

using TempDir = test_support::TempDir;

// A tmpfs of a given size on a fresh directory; unmounted and removed on destruction.
class TmpfsMount {
public:
	explicit TmpfsMount(const std::string& options);
	~TmpfsMount();
	TmpfsMount(const TmpfsMount&) = delete;
	TmpfsMount& operator=(const TmpfsMount&) = delete;
	bool ok() const { return mounted_; }
	const std::string& error() const { return error_; }
	const fs::path& path() const { return path_; }

private:
	fs::path path_;
	bool mounted_ = false;
	std::string error_;
};

std::optional<std::string> read_file(const fs::path& p);
std::vector<std::string> list_dir(const fs::path& p);  // names, sorted; empty when missing
// index.json files anywhere under `dir` (a dump that failed must leave none, not even under a temp name).
std::vector<fs::path> find_index_files(const fs::path& dir);

// --- /proc ---------------------------------------------------------------------------------------------------------

struct MapsEntry {
	uint64_t start = 0, end = 0;
	std::string perms;  // "rw-p"
	uint64_t offset = 0;
	std::string dev;
	uint64_t ino = 0;
	std::string path;
};
std::vector<MapsEntry> read_maps(pid_t pid);

struct FdEntry {
	int fd = -1;
	std::string target;  // readlink /proc/PID/fd/N
	uint64_t pos = 0;
	uint32_t flags = 0;  // fdinfo flags (octal in the file), O_CLOEXEC included
	uint64_t ino = 0;
	uint32_t mode = 0;   // st_mode of what the fd refers to
};
std::map<int, FdEntry> read_fds(pid_t pid);

// A field of /proc/PID/status ("State", "TracerPid"), trimmed; nullopt when the process is gone.
std::optional<std::string> status_field(pid_t pid, const std::string& field);
std::vector<pid_t> thread_ids(pid_t pid);
// Alive, not stopped (State t/T) and not traced (TracerPid 0), for the process and each of its threads.
testing::AssertionResult running_untraced(pid_t pid);

// --- images --------------------------------------------------------------------------------------------------------

std::optional<json> load_index(const fs::path& dir);
std::string xxh3_hex(const void* data, size_t size);
std::optional<std::string> xxh3_file(const fs::path& p);  // of the whole file
// Runs tests/tools/validate_image.py on the image. Missing script: a skip locally, a failure under CI=true.
testing::AssertionResult validates(const fs::path& image_dir);
// Several images in one run of the script (Python's start-up is paid once).
testing::AssertionResult validates(const std::vector<fs::path>& image_dirs);

// Non-empty lines in `s` (an error report must be exactly one).
size_t count_lines(const std::string& s);

}  // namespace e2e
