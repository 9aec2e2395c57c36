// Restore from an incremental image chain (issue 5), without the dump side: a real full dump of counter_mem, then a
// child image made by hand the way /work/notes/incremental.md describes one (parent "../full", inherit on the
// anonymous vmas, a few pages saved again with the full image's own bytes, zero runs only where the full image had
// no page). Restoring the child must bring back the very memory of the full image (the workload checks its
// checksum). Broken links (a missing parent, a parent_id or a process that does not match) are refused with exit
// 8 before anything is created.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <thread>

#include "harness.h"

namespace e2e {
namespace {

constexpr int kExitOk = 0, kExitBadImage = 8;
constexpr uint64_t kPage = 4096;

bool inheritable(const json& vma)
{
	std::string kind = vma.at("kind");
	return !vma.at("shared").get<bool>() && (kind == "anon" || kind == "heap" || kind == "stack");
}

std::string random_id()
{
	std::random_device rd;
	std::string out;
	for (int i = 0; i < 32; i++)
		out += "0123456789abcdef"[rd() % 16];
	return out;
}

std::string read_range(const fs::path& blob, uint64_t offset, uint64_t len)
{
	std::string out(len, '\0');
	int fd = open(blob.c_str(), O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : pread(fd, out.data(), len, off_t(offset));
	if (fd >= 0)
		close(fd);
	return n == ssize_t(len) ? out : std::string();
}

// Where the full image had no page in [start, end): the holes between its runs.
std::vector<std::pair<uint64_t, uint64_t>> holes(uint64_t start, uint64_t end, const json& runs)
{
	std::vector<std::pair<uint64_t, uint64_t>> out;
	uint64_t at = start;
	for (const auto& r : runs) {
		uint64_t s = r.at("start");
		if (s > at)
			out.push_back({at, s});
		at = s + r.at("npages").get<uint64_t>() * kPage;
	}
	if (at < end)
		out.push_back({at, end});
	return out;
}

struct Made {
	uint64_t own = 0, inherited = 0, zero = 0;  // pages, as show should count them
	uint64_t full_pages = 0;                     // what the full image saves: what the chain must resolve to
};

// The child image of one process's vmas: inheritable vmas keep the first page of each of their first runs and one
// page from the middle of the longest (copied from the full image), and mark up to 3 holes zero (at most 4 pages
// each); other vmas keep all their pages. Returns the new page runs' bytes, in blob order.
std::string make_child_vmas(json& proc, const fs::path& full, Made& m)
{
	std::string blob;
	fs::path full_blob = full / proc.at("pages_blob").get<std::string>();
	for (auto& v : proc.at("vmas")) {
		json old_runs = v.at("pages");
		json kept = json::array();
		auto keep = [&](uint64_t start, uint64_t npages, uint64_t from) {
			kept.push_back({{"start", start}, {"npages", npages}, {"blob_offset", blob.size()}});
			blob += read_range(full_blob, from, npages * kPage);
			m.own += npages;
		};
		for (const auto& r : old_runs)
			m.full_pages += r.at("npages").get<uint64_t>();
		if (!inheritable(v) || old_runs.empty()) {
			for (const auto& r : old_runs)
				keep(r.at("start"), r.at("npages"), r.at("blob_offset"));
			v["pages"] = kept;
			continue;
		}
		v["inherit"] = true;
		size_t longest = 0;
		for (size_t i = 0; i < old_runs.size(); i++) {
			if (old_runs[i].at("npages") > old_runs[longest].at("npages"))
				longest = i;
			if (i < 2)
				keep(old_runs[i].at("start"), 1, old_runs[i].at("blob_offset"));
		}
		uint64_t n = old_runs[longest].at("npages"), mid = n / 2;
		if (longest >= 2 || mid > 0)
			keep(old_runs[longest].at("start").get<uint64_t>() + mid * kPage, 1,
			     old_runs[longest].at("blob_offset").get<uint64_t>() + mid * kPage);
		std::sort(kept.begin(), kept.end(), [](const json& a, const json& b) { return a.at("start") < b.at("start"); });
		v["pages"] = kept;
		json zero = json::array();
		for (auto [s, e] : holes(v.at("start"), v.at("end"), old_runs)) {
			if (zero.size() == 3)
				break;
			uint64_t np = std::min<uint64_t>((e - s) / kPage, 4);
			zero.push_back({{"start", s}, {"npages", np}});
			m.zero += np;
		}
		v["zero"] = zero;
	}
	return blob;
}

// Builds dir/../inc from the full image: a new index.json naming full as its parent, the same blobs except the
// page blobs, which hold only the kept pages.
testing::AssertionResult make_incremental(const fs::path& full, const fs::path& inc, Made& m)
{
	auto index = load_index(full);
	if (!index)
		return testing::AssertionFailure() << "no index in " << full;
	json child = *index;
	child["id"] = random_id();
	child["parent"] = "../" + full.filename().string();
	child["parent_id"] = index->at("id");
	fs::create_directories(inc);
	fs::permissions(inc, fs::perms::owner_all, fs::perm_options::replace);
	std::map<std::string, std::string> page_blobs;
	for (auto& p : child.at("processes"))
		if (!p.at("pages_blob").get<std::string>().empty())
			page_blobs[p.at("pages_blob")] = make_child_vmas(p, full, m);
	for (auto& b : child.at("blobs")) {
		std::string name = b.at("name");
		auto it = page_blobs.find(name);
		if (it == page_blobs.end()) {
			fs::copy_file(full / name, inc / name);
			continue;
		}
		std::ofstream(inc / name, std::ios::binary) << it->second;
		b["size"] = it->second.size();
		b["xxh3"] = xxh3_hex(it->second.data(), it->second.size());
	}
	m.inherited = m.full_pages - m.own;
	std::ofstream(inc / "index.json") << child.dump(1, '\t');
	return testing::AssertionSuccess();
}

// Waits until `pid` runs `exe` again, untraced: a restore without -d gives no other sign that it is done.
testing::AssertionResult wait_restored(pid_t pid, const std::string& exe, std::chrono::milliseconds timeout)
{
	auto deadline = Clock::now() + timeout;
	for (;;) {
		std::error_code ec;
		auto target = fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
		if (!ec && target == exe && running_untraced(pid))
			return testing::AssertionSuccess();
		if (Clock::now() > deadline)
			return testing::AssertionFailure() << "pid " << pid << " not running " << exe << " after "
							   << timeout.count() << " ms";
		std::this_thread::sleep_for(5ms);
	}
}

// A full dump (-R) of counter_mem, whose original is then killed so that its PIDs are free for the restore.
struct FullDump {
	TempDir tmp;
	fs::path snaps = tmp / "snaps", full = snaps / "full";
	pid_t pid = -1;
	std::vector<pid_t> tids;

	testing::AssertionResult take(size_t mib)
	{
		Workload wl;
		if (!wl.start("counter_mem", {"--mem-mib", std::to_string(mib)}))
			return testing::AssertionFailure() << wl.error();
		pid = wl.pid();
		fs::create_directories(snaps);
		RunResult r = run_bpfckpt({"dump", "-t", std::to_string(pid), "-D", full.string(), "-R"});
		if (r.exit_code != kExitOk)
			return testing::AssertionFailure() << "dump -R: " << r.describe();
		tids = thread_ids(pid);
		wl.kill_all();
		for (pid_t t : tids)
			for (auto deadline = Clock::now() + 10s; kill(t, 0) == 0 && Clock::now() < deadline;)
				std::this_thread::sleep_for(5ms);
		return testing::AssertionSuccess();
	}
};

TEST(ChainRestore, HandMadeIncrementalRestoresTheFullImagesMemory)
{
	REQUIRE_ROOT_OR_SKIP();
	FullDump d;
	ASSERT_TRUE(d.take(64));
	fs::path inc = d.snaps / "inc";
	Made m;
	ASSERT_TRUE(make_incremental(d.full, inc, m));
	ASSERT_GT(m.inherited, 1000u) << "the test must inherit most of the memory";
	ASSERT_GT(m.zero, 0u);
	EXPECT_TRUE(validates(inc));

	RunResult shown = run_bpfckpt({"show", inc.string(), "--json"});
	ASSERT_EQ(shown.exit_code, kExitOk) << shown.describe();
	json chain = json::parse(shown.out, nullptr, false).value("chain", json());
	ASSERT_EQ(chain.value("images", json::array()).size(), 2u) << shown.out.substr(0, 2000);
	uint64_t own = 0, inherited = 0, zero = 0;
	for (const auto& p : chain.at("processes")) {
		own += p.at("own_pages").get<uint64_t>();
		inherited += p.at("inherited_pages").get<uint64_t>();
		zero += p.at("zero_pages").get<uint64_t>();
	}
	EXPECT_EQ(own, m.own);
	EXPECT_EQ(inherited, m.inherited);
	EXPECT_EQ(zero, m.zero);

	// Moved as a whole, the chain still restores: the parent is named relative to the child.
	fs::path moved = d.tmp / "moved";
	fs::rename(d.snaps, moved);
	Command restore;
	ASSERT_TRUE(restore.start({bpfckpt_bin(), "restore", "-D", (moved / "inc").string(), "--stats", "--json"}));
	ASSERT_TRUE(wait_restored(d.pid, workload_path("counter_mem"), 60s));
	auto now = thread_ids(d.pid);
	EXPECT_EQ(std::set<pid_t>(now.begin(), now.end()), std::set<pid_t>(d.tids.begin(), d.tids.end()));
	kill(d.pid, SIGUSR1);
	RunResult r = restore.finish();
	EXPECT_EQ(r.exit_code, kExitOk) << r.describe();
	EXPECT_NE(r.out.find("PASS"), std::string::npos) << r.describe();
	auto stats_at = r.out.find("{\"");
	ASSERT_NE(stats_at, std::string::npos) << r.describe();
	json stats = json::parse(r.out.substr(stats_at), nullptr, false);
	EXPECT_EQ(stats.value("pages_restored", uint64_t(0)), m.full_pages) << "pages_restored counts resolved pages";
}

// One broken copy of the chain's child: restore -d must exit 8 with one line naming the link, and create nothing.
void expect_refused(const FullDump& d, const std::string& what, const std::function<void(json&)>& corrupt,
		    const std::string& mentions)
{
	SCOPED_TRACE(what);
	fs::path inc = d.snaps / ("bad-" + std::to_string(std::hash<std::string>{}(what) % 100000));
	Made m;
	ASSERT_TRUE(make_incremental(d.full, inc, m));
	auto index = load_index(inc);
	ASSERT_TRUE(index);
	corrupt(*index);
	std::ofstream(inc / "index.json", std::ios::trunc) << index->dump();
	RunResult r = run_bpfckpt({"restore", "-D", inc.string(), "-d"});
	EXPECT_EQ(r.exit_code, kExitBadImage) << r.describe();
	EXPECT_EQ(count_lines(r.err), 1u) << r.err;
	EXPECT_NE(r.err.find(mentions), std::string::npos) << r.err;
	for (pid_t t : d.tids)
		EXPECT_NE(kill(t, 0), 0) << "pid " << t << " exists after a refused restore";
	std::cerr << "[ NOTE     ] " << what << ": exit " << r.exit_code << ": " << r.err;
}

TEST(ChainRestore, BrokenLinksAreRefused)
{
	REQUIRE_ROOT_OR_SKIP();
	FullDump d;
	ASSERT_TRUE(d.take(16));
	expect_refused(d, "missing parent", [](json& j) { j["parent"] = "../no-such-image"; },
		       "parent ../no-such-image: no such directory");
	expect_refused(d, "parent_id mismatch", [](json& j) { j["parent_id"] = random_id(); }, "but parent_id is");
	expect_refused(d, "another process under the same pid",
		       [](json& j) { j["processes"][0]["start_time"] = j["processes"][0]["start_time"].get<uint64_t>() + 1; },
		       "is another process or address space");
	expect_refused(d, "inherit without a parent", [](json& j) {
		j.erase("parent");
		j["parent_id"] = "";
	}, "inherits, but the image has no parent");
}

}  // namespace
}  // namespace e2e
