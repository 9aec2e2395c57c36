// `bpfckpt check`'s probes on this machine, and how their results become an exit code. Developers and CI run as
// root on a kernel that has every feature (KERNEL.md), so there each probe must pass; elsewhere they are skipped,
// except in CI, where not being root is itself a failure.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "check/probes.h"

using namespace bpfckpt;
using namespace bpfckpt::check;

namespace {

bool in_ci()
{
	const char* ci = std::getenv("CI");
	return ci && std::strcmp(ci, "true") == 0;
}

// Skips the test unless root; in CI not being root fails it.
#define REQUIRE_ROOT()                                                                       \
	do {                                                                                 \
		if (::geteuid() != 0) {                                                      \
			if (in_ci())                                                         \
				FAIL() << "CI=true but not root: the probes cannot be tested"; \
			GTEST_SKIP() << "not root";                                          \
		}                                                                            \
	} while (0)

void expect_ok(const ProbeResult& r)
{
	EXPECT_TRUE(r.ok) << r.name << ": " << r.detail;
	EXPECT_FALSE(r.name.empty());
	EXPECT_FALSE(r.detail.empty()) << r.name;
}

ProbeResult result(const char* name, bool ok, bool required, bool denied)
{
	return ProbeResult{name, ok, required, ok ? "fine" : "missing", denied};
}

}  // namespace

TEST(CheckProbes, Capabilities) { REQUIRE_ROOT(); expect_ok(probe_capabilities()); }
TEST(CheckProbes, Btf) { REQUIRE_ROOT(); expect_ok(probe_btf()); }
TEST(CheckProbes, BpfIterators) { REQUIRE_ROOT(); expect_ok(probe_bpf_iterators()); }
TEST(CheckProbes, Ptrace) { REQUIRE_ROOT(); expect_ok(probe_ptrace()); }
TEST(CheckProbes, PidfdGetfd) { REQUIRE_ROOT(); expect_ok(probe_pidfd_getfd()); }
TEST(CheckProbes, ProcessVmReadv) { REQUIRE_ROOT(); expect_ok(probe_process_vm_readv()); }
TEST(CheckProbes, PagemapScan) { REQUIRE_ROOT(); expect_ok(probe_pagemap_scan()); }
TEST(CheckProbes, UserfaultfdWpAsync) { REQUIRE_ROOT(); expect_ok(probe_userfaultfd_wp_async()); }
TEST(CheckProbes, Clone3SetTid) { REQUIRE_ROOT(); expect_ok(probe_clone3_set_tid()); }
TEST(CheckProbes, CgroupFreezer) { REQUIRE_ROOT(); expect_ok(probe_cgroup_freezer()); }
TEST(CheckProbes, PosixTimerIds) { REQUIRE_ROOT(); expect_ok(probe_posix_timer_ids()); }

// Everything at once, as `bpfckpt check` runs them: all hold, all but the timer-id probe are required, and no
// victim is left behind.
TEST(CheckProbes, AllHoldAndLeaveNoChildren)
{
	REQUIRE_ROOT();
	auto results = run_all_probes();
	EXPECT_EQ(results.size(), 11u);
	for (const auto& r : results) {
		EXPECT_EQ(r.required, r.name != "posix_timer_ids") << r.name;
		expect_ok(r);
	}
	EXPECT_TRUE(verdict(results).has_value());
	errno = 0;
	EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG | __WALL), -1) << "a probe left a child behind";
	EXPECT_EQ(errno, ECHILD);
}

TEST(CheckVerdict, AllRequiredHold)
{
	EXPECT_TRUE(verdict({result("a", true, true, false), result("b", false, false, false)}).has_value());
}

TEST(CheckVerdict, OnlyPrivilegeMissingIsPermission)
{
	auto st = verdict({result("a", true, true, false), result("b", false, true, true), result("c", false, true, true)});
	ASSERT_FALSE(st);
	EXPECT_EQ(st.error().exit, ExitCode::permission);
	EXPECT_NE(st.error().msg.find("2 of 3 requirements missing"), std::string::npos) << st.error().msg;
}

TEST(CheckVerdict, AnyKernelGapIsKernel)
{
	auto st = verdict({result("a", false, true, true), result("b", false, true, false), result("c", true, true, false)});
	ASSERT_FALSE(st);
	EXPECT_EQ(st.error().exit, ExitCode::kernel);
	EXPECT_EQ(st.error().msg, "2 of 3 requirements missing");
}
