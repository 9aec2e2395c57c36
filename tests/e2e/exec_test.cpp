// Acceptance tests for `bpfckpt exec` (issue 6): a job that forks a tree and hangs is snapped whole on its timeout,
// killed, and brought back alive by `restore` (with and without --pidns), where it finishes correctly when released;
// and each bad input: a job that ends first, a command that is not found or not executable, a signal during the snap,
// a nested exec, an image directory that is not empty, a bad signal name.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <thread>

#include "common/cgroup.h"
#include "harness.h"

namespace e2e {
namespace {

// bpfckpt exec's own exit statuses (src/exec/supervise.h) and bpfckpt's (src/common/exit_codes.h).
constexpr int kSnappedOnSignal = 123, kTimedOut = 124, kNoImage = 125, kCannotExecute = 126, kNotFound = 127;
constexpr int kExitUsage = 2, kExitIo = 7;

std::string cgroup_mount()
{
	auto m = bpfckpt::cgroup::v2_mount();
	return m ? *m : std::string();
}

// The cgroup a test's `bpfckpt exec` (pid exec_pid) makes its job's: below the one this test runs in.
std::string job_cgroup_dir(pid_t exec_pid)
{
	auto self = bpfckpt::cgroup::path_of(getpid());
	std::string base = cgroup_mount() + (self && *self != "/" ? *self : std::string());
	return base + "/bpfckpt-exec-" + std::to_string(exec_pid);
}

std::vector<pid_t> cgroup_procs(const std::string& dir)
{
	std::vector<pid_t> pids;
	std::ifstream in(dir + "/cgroup.procs");
	for (pid_t p; in >> p;)
		pids.push_back(p);
	return pids;
}

std::string comm_of(pid_t pid)
{
	auto c = read_file("/proc/" + std::to_string(pid) + "/comm");
	return c ? c->substr(0, c->find('\n')) : std::string();
}

bool pid_exists(pid_t pid)
{
	return access(("/proc/" + std::to_string(pid)).c_str(), F_OK) == 0;
}

// Polls `done` every 10 ms until it holds or `wait` has passed.
template <typename F>
bool eventually(F done, std::chrono::milliseconds wait)
{
	auto deadline = Clock::now() + wait;
	for (;;) {
		if (done())
			return true;
		if (Clock::now() > deadline)
			return false;
		std::this_thread::sleep_for(10ms);
	}
}

// Reaps whatever restore left to us (the harness makes this process a child subreaper): the restored root, or the
// --pidns init, once it exits.
void reap_exited_children()
{
	while (waitpid(-1, nullptr, WNOHANG | __WALL) > 0) {
	}
}

// A cgroup a restore recreated: killed and removed on every path.
class CgroupGuard {
public:
	explicit CgroupGuard(std::string dir) : dir_(std::move(dir)) {}
	~CgroupGuard()
	{
		if (access(dir_.c_str(), F_OK) != 0)
			return;
		std::ofstream(dir_ + "/cgroup.kill") << "1";
		eventually([&] { return cgroup_procs(dir_).empty(); }, 10s);
		eventually([&] { return rmdir(dir_.c_str()) == 0 || errno == ENOENT; }, 5s);
		reap_exited_children();
	}
	CgroupGuard(const CgroupGuard&) = delete;
	CgroupGuard& operator=(const CgroupGuard&) = delete;

private:
	std::string dir_;
};

std::vector<std::string> exec_argv(std::vector<std::string> opts, const std::vector<std::string>& cmd)
{
	opts.insert(opts.begin(), "exec");
	opts.push_back("--");
	opts.insert(opts.end(), cmd.begin(), cmd.end());
	return opts;
}

struct ExecRun {
	RunResult res;
	pid_t pid = -1;
	std::string cgroup;  // the job's cgroup directory

	// exec removes its job's cgroup on every path.
	testing::AssertionResult cgroup_removed() const
	{
		if (access(cgroup.c_str(), F_OK) == 0)
			return testing::AssertionFailure() << cgroup << " was not removed";
		return testing::AssertionSuccess();
	}
};

// Runs `bpfckpt exec ARGS`; `during`, if given, is called while it runs, with exec's pid and its job's cgroup.
ExecRun run_exec(const std::vector<std::string>& args, const std::function<void(const ExecRun&)>& during = {},
		 const RunOptions& opt = {})
{
	std::vector<std::string> argv{bpfckpt_bin()};
	argv.insert(argv.end(), args.begin(), args.end());
	ExecRun run;
	Command c;
	if (!c.start(argv, opt)) {
		run.res.err = "cannot start bpfckpt";
		return run;
	}
	run.pid = c.pid();
	run.cgroup = job_cgroup_dir(c.pid());
	if (during)
		during(run);
	run.res = c.finish();
	return run;
}

// For run_exec's `during`: once the job's cgroup holds `n` processes (it has started), `sig` to bpfckpt exec.
std::function<void(const ExecRun&)> signal_when_started(size_t n, int sig)
{
	return [=](const ExecRun& run) {
		EXPECT_TRUE(eventually([&] { return cgroup_procs(run.cgroup).size() >= n; }, 10s)) << "the job did not start";
		kill(run.pid, sig);
	};
}

// Lines of `out` that start with `prefix`.
std::vector<std::string> lines_with(const std::string& out, const std::string& prefix)
{
	std::vector<std::string> v;
	std::istringstream in(out);
	for (std::string line; std::getline(in, line);)
		if (line.rfind(prefix, 0) == 0)
			v.push_back(line);
	return v;
}

// --- the hung job --------------------------------------------------------------------------------------------------

// A shell that starts three counter_mem workloads in the background (each with its own memory, counter thread and
// READY line) and waits for each; it prints their exit statuses once they are all done. It never finishes by itself.
std::string hang_script()
{
	std::string w = workload_path("counter_mem") + " --mem-mib 4";
	return "echo \"SH $$\"\n" + w + " & p1=$!\n" + w + " & p2=$!\n" + w +
	       " & p3=$!\n"
	       "wait $p1; s1=$?; wait $p2; s2=$?; wait $p3; s3=$?\n"
	       "echo \"DONE $s1 $s2 $s3\"\n";
}

struct HungJob {
	RunResult res;
	pid_t exec_pid = -1;
	pid_t sh = -1;
	std::set<pid_t> workloads;
	std::string cgroup_dir;
};

// Runs the hung job under `bpfckpt exec --snap-on-timeout 2` into img and checks what the acceptance asks: the exit
// status says it timed out, img holds the whole tree, and the tree and its cgroup are gone.
void run_hung_job(const fs::path& img, HungJob& job)
{
	ExecRun run = run_exec(exec_argv({"--snap-on-timeout", "2", "-D", img.string()}, {"/bin/sh", "-c", hang_script()}));
	job.res = run.res;
	job.exec_pid = run.pid;
	job.cgroup_dir = run.cgroup;
	ASSERT_EQ(job.res.exit_code, kTimedOut) << job.res.describe();
	ASSERT_EQ(count_lines(job.res.err), 1u) << job.res.describe();
	EXPECT_NE(job.res.err.find("timed out after 2 s"), std::string::npos) << job.res.err;
	EXPECT_NE(job.res.err.find("bpfckpt restore -D " + img.string() + " --pidns"), std::string::npos) << job.res.err;
	EXPECT_NE(job.res.err.find("bpfckpt core -D " + img.string()), std::string::npos) << job.res.err;

	auto sh = lines_with(job.res.out, "SH ");
	ASSERT_EQ(sh.size(), 1u) << job.res.out;
	job.sh = std::stoi(sh[0].substr(3));
	for (const std::string& line : lines_with(job.res.out, "READY "))
		job.workloads.insert(json::parse(line.substr(6)).at("pid").get<pid_t>());
	ASSERT_EQ(job.workloads.size(), 3u) << "the workloads were not all READY within the 2 s timeout\n"
					    << job.res.out;

	// The image holds the whole tree: the shell and its three children, in the job's cgroup.
	RunResult show = run_bpfckpt({"show", img.string(), "--json"});
	ASSERT_EQ(show.exit_code, 0) << show.describe();
	json index = json::parse(show.out);
	std::set<pid_t> saved;
	for (const json& p : index.at("processes")) {
		saved.insert(p.at("pid").get<pid_t>());
		if (p.at("pid").get<pid_t>() != job.sh) {
			EXPECT_EQ(p.at("ppid").get<pid_t>(), job.sh) << p.dump();
		}
	}
	std::set<pid_t> expected = job.workloads;
	expected.insert(job.sh);
	EXPECT_EQ(saved, expected) << show.out.substr(0, 2000);
	EXPECT_EQ(index.at("target").at("kind"), "cgroup");
	EXPECT_EQ(cgroup_mount() + index.at("target").at("cgroup").get<std::string>(), job.cgroup_dir);
	EXPECT_TRUE(validates(img));

	// The tree is gone, reaped by exec itself (no zombie holds a PID), and so is its cgroup.
	for (pid_t p : expected)
		EXPECT_FALSE(pid_exists(p)) << "pid " << p << " still exists after exec exited";
	EXPECT_TRUE(run.cgroup_removed());
}

// Restores img (`restore -d`, with --pidns if asked) with its stdout, which the job's stdout and stderr come back
// connected to, in out_file; then releases the hang: SIGUSR1 makes each workload verify itself and exit, after which
// the shell's `wait`s return and it prints their statuses.
void restore_and_release(const fs::path& img, const HungJob& job, bool pidns, const fs::path& out_file)
{
	std::string cmd = "exec " + bpfckpt_bin() + " restore -D " + img.string() + " -d" + (pidns ? " --pidns" : "") +
			  " >" + out_file.string() + " 2>" + out_file.string() + ".err";
	CgroupGuard guard(job.cgroup_dir);
	RunResult r = run({"/bin/sh", "-c", cmd});
	ASSERT_EQ(r.exit_code, 0) << r.describe() << read_file(out_file.string() + ".err").value_or("");

	// Alive again, in the job's cgroup recreated: the shell and its three workloads.
	std::vector<pid_t> workloads;
	ASSERT_TRUE(eventually(
		[&] {
			workloads.clear();
			for (pid_t p : cgroup_procs(job.cgroup_dir))
				if (comm_of(p) == "counter_mem")
					workloads.push_back(p);
			return workloads.size() == 3;
		},
		10s))
		<< "restored cgroup " << job.cgroup_dir << " holds " << cgroup_procs(job.cgroup_dir).size() << " processes";
	if (!pidns) {
		std::set<pid_t> got(workloads.begin(), workloads.end());
		EXPECT_EQ(got, job.workloads) << "restore without --pidns keeps the saved PIDs";
		EXPECT_EQ(comm_of(job.sh), "sh");
	}
	for (pid_t p : workloads)
		EXPECT_TRUE(running_untraced(p));

	for (pid_t p : workloads)
		kill(p, SIGUSR1);
	std::string out;
	bool done = eventually(
		[&] {
			out = read_file(out_file).value_or("");
			return out.find("DONE") != std::string::npos;
		},
		30s);
	ASSERT_TRUE(done) << "the restored shell did not finish; its output:\n" << out;
	EXPECT_EQ(lines_with(out, "PASS").size(), 3u) << out;
	EXPECT_EQ(lines_with(out, "DONE"), std::vector<std::string>{"DONE 0 0 0"}) << out;
	EXPECT_TRUE(eventually([&] { return cgroup_procs(job.cgroup_dir).empty(); }, 10s))
		<< "the restored job did not end";
}

// The acceptance: the hung job snapped on its timeout, restored (under --pidns, or with its saved PIDs), released.
void snap_restore_release(bool pidns)
{
	TempDir tmp;
	HungJob job;
	run_hung_job(tmp / "img", job);
	if (testing::Test::HasFatalFailure())
		return;
	if (!pidns) {
		// exec reaped the tree before it exited, so the saved PIDs are free unless another process took one since.
		std::vector<pid_t> pids(job.workloads.begin(), job.workloads.end());
		pids.push_back(job.sh);
		ASSERT_TRUE(eventually([&] { return std::none_of(pids.begin(), pids.end(), pid_exists); }, 5s));
	}
	restore_and_release(tmp / "img", job, pidns, tmp / "out");
}

TEST(Exec, TimeoutSnapsHungTreeAndRestorePidnsFinishesIt)
{
	REQUIRE_ROOT_OR_SKIP();
	snap_restore_release(true);
}

TEST(Exec, TimeoutSnapsHungTreeAndRestoreKeepsPids)
{
	REQUIRE_ROOT_OR_SKIP();
	snap_restore_release(false);
}

// --- a job that ends before the timeout ------------------------------------------------------------------------------

TEST(Exec, ExitStatusPassesThroughAndNoImage)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	auto t0 = Clock::now();
	ExecRun run = run_exec(exec_argv({"--snap-on-timeout", "30", "-D", (tmp / "img").string()},
					 {"/bin/sh", "-c", "echo out; echo err >&2; exit 7"}));
	const RunResult& r = run.res;
	EXPECT_EQ(r.exit_code, 7) << r.describe();
	EXPECT_EQ(r.out, "out\n");
	EXPECT_EQ(r.err, "err\n");  // stdio is the command's, exec adds nothing
	EXPECT_LT(Clock::now() - t0, 20s) << "exec waited for the timeout";
	EXPECT_FALSE(fs::exists(tmp / "img")) << "no image directory is created without a snap";
	EXPECT_TRUE(run.cgroup_removed());
}

TEST(Exec, KilledBySignalGives128PlusSignal)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	RunResult r = run_bpfckpt(exec_argv({"-D", (tmp / "img").string()}, {"/bin/sh", "-c", "kill -TERM $$"}));
	EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.describe();
	EXPECT_FALSE(fs::exists(tmp / "img"));
}

// When the command exits, what it left running in its cgroup is killed, as a CI runner would.
TEST(Exec, LeftoverProcessesAreKilledWhenCommandExits)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	ExecRun run = run_exec(
		exec_argv({"-D", (tmp / "img").string()}, {"/bin/sh", "-c", "sleep 1000 >/dev/null 2>&1 & echo $!"}));
	ASSERT_EQ(run.res.exit_code, 0) << run.res.describe();
	pid_t leftover = std::stoi(run.res.out);
	EXPECT_FALSE(pid_exists(leftover)) << "the background sleep outlived its job";
	EXPECT_TRUE(run.cgroup_removed());
}

// SIGTERM sent to bpfckpt exec (by a CI runner) is passed on to the command, not turned into a snap.
TEST(Exec, SigtermIsForwardedToCommand)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	ExecRun run = run_exec(exec_argv({"--snap-on-timeout", "60", "-D", (tmp / "img").string()},
					 {"/bin/sh", "-c", "trap 'exit 42' TERM; while :; do sleep 0.05; done"}),
			       signal_when_started(2, SIGTERM));
	EXPECT_EQ(run.res.exit_code, 42) << run.res.describe();
	EXPECT_FALSE(fs::exists(tmp / "img"));
}

// --snap-on-signal: the same snap as a timeout, on a signal to bpfckpt, with its own exit status.
TEST(Exec, SnapOnSignal)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	ExecRun run = run_exec(exec_argv({"--snap-on-signal", "usr1", "-D", (tmp / "img").string()},
					 {"/bin/sh", "-c", "sleep 1000; exit 3"}),
			       signal_when_started(2, SIGUSR1));
	const RunResult& r = run.res;
	ASSERT_EQ(r.exit_code, kSnappedOnSignal) << r.describe();
	EXPECT_NE(r.err.find("got SIGUSR1: snapped 2 process(es)"), std::string::npos) << r.err;
	auto index = load_index(tmp / "img");
	ASSERT_TRUE(index);
	EXPECT_EQ(index->at("processes").size(), 2u);
	EXPECT_TRUE(run.cgroup_removed());
}

// --- the command cannot run ----------------------------------------------------------------------------------------

TEST(ExecRefuses, CommandNotFound)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	ExecRun run = run_exec(
		exec_argv({"--snap-on-timeout", "5", "-D", (tmp / "img").string()}, {"bpfckpt-no-such-command", "x"}));
	const RunResult& r = run.res;
	EXPECT_EQ(r.exit_code, kNotFound) << r.describe();
	EXPECT_EQ(count_lines(r.err), 1u) << r.err;
	EXPECT_NE(r.err.find("bpfckpt-no-such-command: command not found"), std::string::npos) << r.err;
	EXPECT_FALSE(fs::exists(tmp / "img"));
	EXPECT_TRUE(run.cgroup_removed());
}

TEST(ExecRefuses, CommandNotExecutable)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	std::ofstream(tmp / "script") << "#!/bin/sh\nexit 0\n";
	chmod((tmp / "script").c_str(), 0644);
	RunResult r = run_bpfckpt(exec_argv({"-D", (tmp / "img").string()}, {(tmp / "script").string()}));
	EXPECT_EQ(r.exit_code, kCannotExecute) << r.describe();
	EXPECT_EQ(count_lines(r.err), 1u) << r.err;
	EXPECT_NE(r.err.find("cannot execute: Permission denied"), std::string::npos) << r.err;
}

// DIR is checked before the command runs: a snap hours later must not be the first to find it taken.
TEST(ExecRefuses, ImageDirNotEmptyBeforeRunning)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	fs::create_directory(tmp / "img");
	std::ofstream(tmp / "img" / "something") << "x";
	RunResult r = run_bpfckpt(exec_argv({"--snap-on-timeout", "5", "-D", (tmp / "img").string()},
					    {"/bin/sh", "-c", "touch " + (tmp / "ran").string()}));
	EXPECT_EQ(r.exit_code, kExitIo) << r.describe();
	EXPECT_EQ(count_lines(r.err), 1u) << r.err;
	EXPECT_NE(r.err.find("exists and is not empty"), std::string::npos) << r.err;
	EXPECT_FALSE(fs::exists(tmp / "ran")) << "the command ran although DIR was refused";

	r = run_bpfckpt(exec_argv({"-D", (tmp / "no-such-parent" / "img").string()}, {"true"}));
	EXPECT_EQ(r.exit_code, kExitIo) << r.describe();
	EXPECT_NE(r.err.find("is not a directory"), std::string::npos) << r.err;
}

TEST(ExecRefuses, BadOptions)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	std::string img = (tmp / "img").string();
	for (const char* sig : {"KILL", "SIGSTOP", "CHLD", "NOPE", "0", "999"}) {
		RunResult r = run_bpfckpt(exec_argv({"--snap-on-signal", sig, "-D", img}, {"true"}));
		EXPECT_EQ(r.exit_code, kExitUsage) << sig << ": " << r.describe();
		EXPECT_EQ(count_lines(r.err), 1u) << r.err;
	}
	RunResult r = run_bpfckpt(exec_argv({"--snap-on-timeout", "-1", "-D", img}, {"true"}));
	EXPECT_EQ(r.exit_code, kExitUsage) << r.describe();
	r = run_bpfckpt(exec_argv({"-D", img, "--cgroup-parent", "no/such/cgroup"}, {"true"}));
	EXPECT_EQ(r.exit_code, 3) << r.describe();
	EXPECT_NE(r.err.find("--cgroup-parent"), std::string::npos) << r.err;
	EXPECT_FALSE(fs::exists(img));
}

// --cgroup-parent: the job's cgroup goes below the one named.
TEST(Exec, CgroupParent)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	std::string parent = job_cgroup_dir(getpid()) + "-parent";
	ASSERT_EQ(mkdir(parent.c_str(), 0755), 0) << parent;
	RunResult r = run_bpfckpt(exec_argv({"-D", (tmp / "img").string(), "--cgroup-parent", parent},
					    {"/bin/sh", "-c", "cat /proc/self/cgroup"}));
	rmdir(parent.c_str());
	EXPECT_EQ(r.exit_code, 0) << r.describe();
	std::string rel = parent.substr(cgroup_mount().size());
	EXPECT_NE(r.out.find("0::" + rel + "/bpfckpt-exec-"), std::string::npos) << r.out;
}

// --- a signal during the snap ----------------------------------------------------------------------------------------

// SIGINT while the snap holds the job frozen: the snap stops with an error (its InterruptGuard), exec kills the job
// and exits 125 saying so; no image, nothing left behind.
TEST(ExecRefuses, SigintDuringSnapKillsJobWithoutImage)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	RunOptions opt;
	opt.env = {{"BPFCKPT_TEST_STALL_FROZEN_MS", "4000"}};
	std::vector<pid_t> job;
	// The snap is under way once the job's processes are traced by exec (ptrace stops, held by the test stall).
	auto interrupt_snap = [&](const ExecRun& run) {
		bool frozen = eventually(
			[&] {
				job = cgroup_procs(run.cgroup);
				return !job.empty() && std::all_of(job.begin(), job.end(), [&](pid_t p) {
					return status_field(p, "TracerPid") == std::to_string(run.pid);
				});
			},
			30s);
		EXPECT_TRUE(frozen) << "the snap did not start";
		kill(run.pid, SIGINT);
	};
	ExecRun run = run_exec(exec_argv({"--snap-on-timeout", "1", "-D", (tmp / "img").string()},
					 {"/bin/sh", "-c", "sleep 1000"}),
			       interrupt_snap, opt);
	const RunResult& r = run.res;
	EXPECT_EQ(r.exit_code, kNoImage) << r.describe();
	EXPECT_EQ(count_lines(r.err), 1u) << r.err;
	EXPECT_NE(r.err.find("interrupted by"), std::string::npos) << r.err;
	EXPECT_NE(r.err.find("INT"), std::string::npos) << r.err;
	EXPECT_NE(r.err.find("the job was killed"), std::string::npos) << r.err;
	EXPECT_FALSE(fs::exists(tmp / "img"));
	EXPECT_TRUE(find_index_files(tmp.path()).empty());
	for (pid_t p : job)
		EXPECT_FALSE(pid_exists(p)) << "pid " << p << " outlived the job";
	EXPECT_TRUE(run.cgroup_removed());
}

// --- nesting ---------------------------------------------------------------------------------------------------------

// An exec inside an exec makes its cgroup below the outer one's, and its own snap works there.
TEST(Exec, NestedInnerSnapsItsOwnJob)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	ExecRun outer = run_exec(exec_argv({"-D", (tmp / "outer").string()},
					   {bpfckpt_bin(), "exec", "--snap-on-timeout", "1", "-D", (tmp / "inner").string(),
					    "--", "sleep", "1000"}));
	const RunResult& r = outer.res;
	EXPECT_EQ(r.exit_code, kTimedOut) << r.describe();  // the inner's status, passed through
	EXPECT_FALSE(fs::exists(tmp / "outer"));
	auto index = load_index(tmp / "inner");
	ASSERT_TRUE(index) << r.describe();
	ASSERT_EQ(index->at("processes").size(), 1u);
	std::string inner_cg = cgroup_mount() + index->at("target").at("cgroup").get<std::string>();
	EXPECT_EQ(inner_cg.rfind(outer.cgroup + "/bpfckpt-exec-", 0), 0u) << inner_cg << " is not below " << outer.cgroup;
	EXPECT_TRUE(outer.cgroup_removed());
}

// The outer's snap would have to hold the inner bpfckpt itself: refused with a clear error, the job killed, 125.
TEST(ExecRefuses, OuterSnapOfNestedExec)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	ExecRun outer = run_exec(exec_argv({"--snap-on-timeout", "2", "-D", (tmp / "outer").string()},
					   {bpfckpt_bin(), "exec", "-D", (tmp / "inner").string(), "--", "sleep", "1000"}));
	const RunResult& r = outer.res;
	EXPECT_EQ(r.exit_code, kNoImage) << r.describe();
	EXPECT_EQ(count_lines(r.err), 1u) << r.err;
	EXPECT_NE(r.err.find("holds another bpfckpt"), std::string::npos) << r.err;
	EXPECT_FALSE(fs::exists(tmp / "outer"));
	EXPECT_FALSE(fs::exists(tmp / "inner"));
	EXPECT_TRUE(outer.cgroup_removed()) << "(with the inner's cgroup below it)";
}

}  // namespace
}  // namespace e2e
