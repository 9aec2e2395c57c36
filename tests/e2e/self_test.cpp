// Acceptance tests for the self-checkpoint API (issue #6, include/bpfckpt/self.h): the self_ckpt workload calls
// bpfckpt_checkpoint_self, runs on and changes its state; restored from the image, the call returns 1 and the state
// is the one of the moment of the call. Failures return -1 with errno and leave the caller running, and no failure
// (a missing binary, a dumper or its watcher killed) makes the caller hang.
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <fstream>
#include <thread>

#include "harness.h"

namespace e2e {
namespace {

constexpr int kExitOk = 0, kExitUsage = 2;

// Starts self_ckpt on image dir `img`; its READY line says what the call returned.
testing::AssertionResult start_self(Workload& wl, const fs::path& img, const TempDir& work,
				    const std::vector<std::string>& extra = {}, const std::string& bin = bpfckpt_bin())
{
	std::vector<std::string> args{"--dir", img.string(), "--work", work.path().string(), "--bpfckpt", bin};
	args.insert(args.end(), extra.begin(), extra.end());
	if (!wl.start("self_ckpt", args, 120s))
		return testing::AssertionFailure() << wl.error();
	return testing::AssertionSuccess();
}

// Starts self_ckpt and expects the call to return 0 with an image in `img`, whose index it loads.
testing::AssertionResult checkpointed(Workload& wl, const fs::path& img, const TempDir& work,
				      const std::vector<std::string>& extra, json& index)
{
	if (auto started = start_self(wl, img, work, extra); !started)
		return started;
	if (wl.ready().at("returned").get<int>() != 0)
		return testing::AssertionFailure() << "the call did not return 0: " << wl.ready().dump();
	auto loaded = load_index(img);
	if (!loaded)
		return testing::AssertionFailure() << "no image at " << img << " although the call returned 0";
	index = *loaded;
	return testing::AssertionSuccess();
}

int returned(const Workload& wl) { return wl.ready().at("returned").get<int>(); }
int err_of(const Workload& wl) { return wl.ready().at("errno").get<int>(); }

std::string describe(const Workload& wl) { return wl.ready().dump(); }

std::vector<pid_t> image_pids(const json& index)
{
	std::vector<pid_t> pids;
	for (auto& p : index.at("processes"))
		pids.push_back(p.at("pid").get<pid_t>());
	return pids;
}

// `restore -D img` without -d: the restored root's stdout is restore's, and restore exits with its status.
void expect_restored_pass(const fs::path& img)
{
	RunResult r = run_bpfckpt({"restore", "-D", img.string()}, {.timeout = 120s});
	EXPECT_EQ(r.exit_code, kExitOk) << r.describe();
	EXPECT_NE(r.out.find("\"returned\":1,"), std::string::npos) << "the restored call did not return 1:\n"
								     << r.describe();
	EXPECT_NE(r.out.find("\nPASS\n"), std::string::npos) << r.describe();
}

// A stand-in for bpfckpt, written as a shell script into `dir`.
fs::path fake_bpfckpt(const TempDir& dir, const std::string& body)
{
	fs::path p = dir / "fake-bpfckpt";
	std::ofstream(p) << "#!/bin/sh\n" << body;
	chmod(p.c_str(), 0755);
	return p;
}

TEST(SelfCheckpoint, ReturnsZeroThenOneInTheRestoredProcess)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp, work;
	fs::path img = tmp / "img";
	Workload wl;
	json index;
	ASSERT_TRUE(checkpointed(wl, img, work, {}, index));
	std::cout << "bpfckpt_checkpoint_self took " << wl.ready().at("call_ms").get<double>() << " ms\n";
	EXPECT_EQ(image_pids(index), std::vector<pid_t>{wl.pid()}) << "the default dumps the caller alone";
	EXPECT_TRUE(validates(img));
	// The caller ran on, changed its state (counter, buffer, offset) and still holds it consistently.
	EXPECT_EQ(wl.verify(), "PASS");
	expect_restored_pass(img);
}

TEST(SelfCheckpoint, TreeFlagTakesTheChildAlong)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp, work;
	fs::path img = tmp / "img";
	Workload wl;
	json index;
	ASSERT_TRUE(checkpointed(wl, img, work, {"--child", "--tree"}, index));
	pid_t child = wl.ready().at("child_pid").get<pid_t>();
	EXPECT_EQ(image_pids(index), (std::vector<pid_t>{wl.pid(), child}));
	EXPECT_EQ(wl.verify(), "PASS");
	// The restored parent checks the restored child's memory and folds its verdict into its own.
	expect_restored_pass(img);
}

TEST(SelfCheckpoint, WithoutTreeFlagTheChildStaysOut)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp, work;
	fs::path img = tmp / "img";
	Workload wl;
	json index;
	ASSERT_TRUE(checkpointed(wl, img, work, {"--child"}, index));
	EXPECT_EQ(image_pids(index), std::vector<pid_t>{wl.pid()});
	EXPECT_TRUE(running_untraced(wl.ready().at("child_pid").get<pid_t>()));
	EXPECT_EQ(wl.verify(), "PASS");
}

// A failed dump: -1 with the dump's errno (or its exit class's), no image, and the caller runs on untouched.
void expect_failure_leaves_caller(const fs::path& img, const TempDir& work, int want_errno)
{
	Workload wl;
	ASSERT_TRUE(start_self(wl, img, work));
	EXPECT_EQ(returned(wl), -1) << describe(wl);
	EXPECT_EQ(err_of(wl), want_errno) << describe(wl) << " (want " << strerror(want_errno) << ")";
	EXPECT_TRUE(find_index_files(img.parent_path()).empty());
	EXPECT_TRUE(running_untraced(wl.pid()));
	EXPECT_EQ(wl.verify(), "PASS");
}

TEST(SelfCheckpoint, NonEmptyDirFailsAndTheCallerRunsOn)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp, work;
	fs::create_directory(tmp / "img");
	std::ofstream(tmp / "img" / "someone-elses") << "x";
	// "exists and is not empty" is an image error without an errno: bpfckpt's exit class io gives EIO.
	expect_failure_leaves_caller(tmp / "img", work, EIO);
}

TEST(SelfCheckpoint, ReadOnlyDirFailsWithErofs)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir work;
	TmpfsMount mnt("size=1m,mode=0755");
	ASSERT_TRUE(mnt.ok()) << mnt.error();
	ASSERT_EQ(mount(nullptr, mnt.path().c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr), 0) << strerror(errno);
	expect_failure_leaves_caller(mnt.path() / "img", work, EROFS);
}

// Needs no root and no bpfckpt: the library finds nothing to run and says so at once.
TEST(SelfCheckpoint, MissingBinaryIsEnoentAtOnce)
{
	TempDir tmp, work;
	Workload wl;
	ASSERT_TRUE(start_self(wl, tmp / "img", work, {}, (tmp / "no-such-bpfckpt").string()));
	EXPECT_EQ(returned(wl), -1) << describe(wl);
	EXPECT_EQ(err_of(wl), ENOENT) << describe(wl);
	EXPECT_LT(wl.ready().at("call_ms").get<double>(), 1000.0) << describe(wl);
	EXPECT_EQ(wl.verify(), "PASS");
}

// The worst moment for bpfckpt to die: the RESTORED byte is in the caller's pipe, not yet taken back. The caller
// must see that it was not restored (its pipe and start time are its own) and fail with EIO.
TEST(SelfCheckpoint, DumperDyingWithTheByteInThePipeIsNoRestore)
{
	TempDir tmp, work;
	fs::path fake = fake_bpfckpt(tmp, "while [ $# -gt 0 ]; do\n"
					  "  case \"$1\" in -t) pid=$2; shift;; --self-token) tok=$2; shift;; esac\n"
					  "  shift\n"
					  "done\n"
					  "printf R > /proc/$pid/fd/${tok#*:}\n"
					  "kill -9 $$\n");
	Workload wl;
	ASSERT_TRUE(start_self(wl, tmp / "img", work, {}, fake.string()));
	EXPECT_EQ(returned(wl), -1) << describe(wl);
	EXPECT_EQ(err_of(wl), EIO) << describe(wl);
	EXPECT_EQ(wl.verify(), "PASS");
}

// The watcher that turns bpfckpt's exit into a verdict is killed: the caller notices within its watch period
// instead of waiting for ever.
TEST(SelfCheckpoint, WatcherKilledIsNoHang)
{
	TempDir tmp, work;
	fs::path pidfile = tmp / "fake.pid";
	fs::path fake = fake_bpfckpt(tmp, "echo $$ > " + pidfile.string() + "\nkill -9 $PPID\nexec sleep 30\n");
	Workload wl;
	ASSERT_TRUE(start_self(wl, tmp / "img", work, {}, fake.string()));
	if (auto pid = read_file(pidfile); pid && !pid->empty())
		kill(std::stoi(*pid), SIGKILL);  // the fake bpfckpt, in a session of its own
	EXPECT_EQ(returned(wl), -1) << describe(wl);
	EXPECT_EQ(err_of(wl), EIO) << describe(wl);
	EXPECT_LT(wl.ready().at("call_ms").get<double>(), 10000.0) << describe(wl);
	EXPECT_EQ(wl.verify(), "PASS");
}

// `cmake --install` of this build, then a plain C program compiled with the installed header and pkg-config file and
// linked with cc against the static library: no C++ runtime, and it finds bpfckpt on PATH.
TEST(SelfCheckpoint, InstalledLibraryBuildsACProgram)
{
	TempDir tmp;
	fs::path build = fs::path(bpfckpt_bin()).parent_path(), prog = tmp / "prog";
	std::ofstream(tmp / "prog.c") << "#include <bpfckpt/self.h>\n#include <errno.h>\n#include <stdio.h>\n"
					 "int main(int argc, char **argv)\n{\n\t(void)argc;\n"
					 "\tint r = bpfckpt_checkpoint_self(argv[1], 0);\n"
					 "\tprintf(\"returned %d errno %d\\n\", r, r < 0 ? errno : 0);\n\treturn 0;\n}\n";
	RunResult built = run({"/bin/sh", "-c",
			       "set -e; DESTDIR=$1 cmake --install $2 > /dev/null\n"
			       "export PKG_CONFIG_SYSROOT_DIR=$1 PKG_CONFIG_PATH=$(dirname $(find $1 -name bpfckpt.pc))\n"
			       "cc -Wall -Wextra -Werror $3.c $(pkg-config --cflags bpfckpt) -Wl,-Bstatic "
			       "$(pkg-config --libs bpfckpt) -Wl,-Bdynamic -o $3\n"
			       "readelf -d $3 | grep NEEDED\n",
			       "sh", (tmp / "root").string(), build.string(), prog.string()});
	ASSERT_EQ(built.exit_code, kExitOk) << built.describe();
	EXPECT_EQ(built.out.find("libstdc++"), std::string::npos) << built.out;
	EXPECT_EQ(built.out.find("libbpfckpt"), std::string::npos) << "linked the shared library: " << built.out;

	RunResult none = run({prog.string(), (tmp / "img1").string()}, {.env = {{"BPFCKPT", ""}, {"PATH", "/nonexistent"}}});
	EXPECT_EQ(none.out, "returned -1 errno " + std::to_string(ENOENT) + "\n") << none.describe();
	if (auto why = missing_requirement())
		SKIP_OR_FAIL(*why);  // the rest dumps: without root and the kernel's features it skips, and in CI fails
	RunResult found = run({prog.string(), (tmp / "img2").string()}, {.env = {{"BPFCKPT", ""}, {"PATH", build}}});
	EXPECT_EQ(found.out, "returned 0 errno 0\n") << found.describe();
	EXPECT_TRUE(load_index(tmp / "img2"));
}

TEST(SelfCheckpoint, SelfTokenOptionIsHiddenAndChecked)
{
	RunResult help = run_bpfckpt({"dump", "--help"});
	EXPECT_EQ(help.out.find("self-token"), std::string::npos) << help.out;
	RunResult bad = run_bpfckpt({"dump", "-t", std::to_string(getpid()), "-D", "/nonexistent/img", "--self-token",
				     "3"});
	EXPECT_EQ(bad.exit_code, kExitUsage) << bad.describe();
	EXPECT_EQ(count_lines(bad.err), 1u) << bad.describe();
}

}  // namespace
}  // namespace e2e
