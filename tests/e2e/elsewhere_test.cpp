// Restoring elsewhere (issue 6): an image whose executable and data files were copied to another root, where inodes
// and mtimes differ. `restore --root DIR` finds each file beneath DIR and accepts it by size and content digest;
// `restore --check` says up front what differs and whether a restore would go through. The workload is dump_state,
// run from a copy of its binary in a temp dir, with its data files beside it.
#include <sys/stat.h>
#include <xxhash.h>

#include <fstream>
#include <set>
#include <sstream>

#include "restore_run.h"

namespace e2e {
namespace {

constexpr int kExitUnsupported = 6;

// Processes whose executable is `exe` and whose innermost PID is `inner`, in any PID namespace.
std::vector<pid_t> find_restored(const fs::path& exe, pid_t inner)
{
	std::vector<pid_t> out;
	for (auto& name : list_dir("/proc")) {
		if (name.empty() || !isdigit(static_cast<unsigned char>(name[0])))
			continue;
		std::error_code ec;
		if (fs::read_symlink("/proc/" + name + "/exe", ec) != exe || ec)
			continue;
		std::istringstream ns(status_field(pid_t(std::stoi(name)), "NSpid").value_or(""));
		pid_t last = 0;
		for (pid_t x; ns >> x;)
			last = x;
		if (last == inner)
			out.push_back(pid_t(std::stoi(name)));
	}
	return out;
}

size_t count_prefixed(const std::string& text, const std::string& prefix)
{
	size_t n = 0;
	std::istringstream in(text);
	for (std::string line; std::getline(in, line);)
		n += line.rfind(prefix, 0) == 0;
	return n;
}

// XXH3_128bits of a whole file, canonical (big-endian) hex: what the image's xxh3_128 digests must be.
std::string xxh3_128_file(const fs::path& p)
{
	std::string bytes = read_file(p).value_or("");
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits(bytes.data(), bytes.size()));
	std::string hex;
	for (unsigned char b : c.digest) {
		char two[3];
		snprintf(two, sizeof(two), "%02x", b);
		hex += two;
	}
	return hex;
}

void flip_byte(const fs::path& p, off_t at)
{
	int fd = open(p.c_str(), O_RDWR | O_CLOEXEC);
	ASSERT_GE(fd, 0) << p;
	unsigned char c = 0;
	ASSERT_EQ(pread(fd, &c, 1, at), 1);
	c ^= 0x20;
	ASSERT_EQ(pwrite(fd, &c, 1, at), 1);
	close(fd);
}

ino_t inode_of(const fs::path& p)
{
	struct stat st{};
	stat(p.c_str(), &st);
	return st.st_ino;
}

// dump_state run from tmp/a, dumped (and killed); then the tree copied to tmp/b/root/<tmp/a> and the original
// removed, as when a CI job's checkout is copied to another machine.
class Elsewhere : public ::testing::Test {
protected:
	void SetUp() override
	{
		if (auto why = missing_requirement())
			SKIP_OR_FAIL(*why);
		a_ = tmp_ / "a";
		fs::create_directories(a_);
		exe_ = a_ / "dump_state";
		fs::copy_file(workload_path("dump_state"), exe_);
		ASSERT_TRUE(wl_.start(name_for(exe_), {"--mem-mib", "8", "--dir", a_.string()})) << wl_.error();
		pid_ = wl_.pid();
		data_ = wl_.ready().at("file_path").get<std::string>();
		img_ = tmp_ / "img";
		RunResult r = run_bpfckpt(dump_args(pid_, img_, false));
		ASSERT_EQ(r.exit_code, kExitOk) << r.describe();
		auto index = load_index(img_);
		ASSERT_TRUE(index);
		index_ = *index;
		reap_dumped(wl_, image_tids(index_));
		root_ = tmp_ / "b" / "root";
		fs::create_directories(under_root(a_).parent_path());
		fs::copy(a_, under_root(a_), fs::copy_options::recursive);
		ASSERT_NE(inode_of(under_root(exe_)), 0u);
		fs::remove_all(a_);
	}

	// A restore that should have been refused may have started the tree anyway: killed, with its --pidns init.
	void TearDown() override
	{
		Restored left;
		for (const fs::path& exe : {under_root(exe_), exe_})
			for (pid_t p : find_restored(exe, pid_)) {
				left.adopt({p});
				pid_t init = pid_t(std::stoi(status_field(p, "PPid").value_or("0")));
				std::error_code ec;
				if (init > 1 && fs::read_symlink("/proc/" + std::to_string(init) + "/exe", ec) == bpfckpt_bin())
					left.adopt({init});
			}
	}

	fs::path under_root(const fs::path& p) const { return root_ / p.relative_path(); }

	RunResult check(const std::vector<std::string>& extra)
	{
		std::vector<std::string> args{"restore", "-D", img_.string(), "--check"};
		args.insert(args.end(), extra.begin(), extra.end());
		return run_bpfckpt(args);
	}

	// A restore that must be refused before anything runs: exit non-zero with one line naming `path` and `why`.
	void expect_refused(const std::vector<std::string>& extra, const fs::path& path, const std::string& why)
	{
		RestoreRun rr;
		std::vector<std::string> args{"restore", "-D", img_.string(), "-d"};
		args.insert(args.end(), extra.begin(), extra.end());
		ASSERT_TRUE(rr.start(args));
		RunResult r = rr.finish(60s);
		EXPECT_NE(r.exit_code, kExitOk) << r.describe();
		EXPECT_EQ(count_lines(r.err), 1u) << r.err;
		EXPECT_NE(r.err.find(path.string()), std::string::npos) << "stderr does not name " << path << ":\n" << r.err;
		EXPECT_NE(r.err.find(why), std::string::npos) << "stderr does not say " << why << ":\n" << r.err;
		EXPECT_TRUE(find_restored(under_root(exe_), pid_).empty()) << "a refused restore left a process behind";
		EXPECT_TRUE(find_restored(exe_, pid_).empty());
		std::cerr << "[ NOTE     ] refused: " << trim_nl(r.err) << "\n";
	}

	// --pidns (and `extra`), then the workload's own verification. `data`: where its data file fd must lead.
	// Returns what the restore said on stderr.
	std::string expect_restores(const std::vector<std::string>& extra, const fs::path& exe, const fs::path& data)
	{
		std::string said;
		restore_and_verify(extra, exe, data, said);
		return said;
	}

	void restore_and_verify(const std::vector<std::string>& extra, const fs::path& exe, const fs::path& data,
				std::string& said)
	{
		RestoreRun rr;
		std::vector<std::string> args{"restore", "-D", img_.string(), "-d", "--pidns"};
		args.insert(args.end(), extra.begin(), extra.end());
		ASSERT_TRUE(rr.start(args));
		RunResult r = rr.finish();
		said = r.err;
		ASSERT_EQ(r.exit_code, kExitOk) << r.describe();
		auto inside = find_restored(exe, pid_);
		ASSERT_EQ(inside.size(), 1u) << "no (or several) restored copies of pid " << pid_ << " running " << exe;
		Restored ns;
		ns.adopt(inside);
		pid_t outer = inside.front();
		std::error_code ec;
		EXPECT_EQ(fs::read_symlink("/proc/" + std::to_string(outer) + "/fd/" +
						   std::to_string(wl_.ready().at("file_fd").get<int>()), ec),
			  data);
		EXPECT_EQ(verify_restored(rr, ns, outer), "PASS");
	}

	TempDir tmp_;
	Workload wl_;
	fs::path a_, exe_, img_, root_;
	std::string data_;
	pid_t pid_ = -1;
	json index_;
};

TEST_F(Elsewhere, RestoresUnderRoot)
{
	// Without --root the files are gone: --check says which, and what to do.
	RunResult c = check({});
	EXPECT_EQ(c.exit_code, kExitUnsupported) << c.describe();
	EXPECT_NE(c.out.find("refuse: file: executable " + exe_.string() + ": not found on this machine"),
		  std::string::npos) << c.out;
	EXPECT_NE(c.out.find(data_ + ": not found"), std::string::npos) << c.out;
	EXPECT_NE(c.out.find("--root"), std::string::npos) << c.out;
	EXPECT_NE(c.out.find("restore would be refused"), std::string::npos) << c.out;
	expect_refused({"--pidns"}, exe_, "not found");

	// With it, nothing stands in the way (the system libraries are found at their own paths, same content).
	c = check({"--root", root_.string()});
	EXPECT_EQ(c.exit_code, kExitOk) << c.describe();
	EXPECT_NE(c.out.find("restore would work"), std::string::npos) << c.out;
	EXPECT_EQ(c.out.find("refuse"), std::string::npos) << c.out;
	EXPECT_NE(c.out.find("libc.so.6: not under " + root_.string()), std::string::npos) << c.out;

	expect_restores({"--root", root_.string()}, under_root(exe_), under_root(data_));
}

TEST_F(Elsewhere, ChangedFileUnderRootIsRefused)
{
	fs::path data = under_root(data_);
	flip_byte(data, 5000);  // same size, one byte differs
	RunResult c = check({"--root", root_.string(), "--pidns"});
	EXPECT_EQ(c.exit_code, kExitUnsupported) << c.describe();
	EXPECT_NE(c.out.find("refuse: file: file " + data_ + ": changed since the dump: content differs"),
		  std::string::npos) << c.out;
	EXPECT_EQ(count_prefixed(c.out, "refuse:"), 1u) << c.out;
	expect_refused({"--root", root_.string(), "--pidns"}, data_, "content differs");

	// A byte more: the size tells, before any hashing.
	flip_byte(data, 5000);
	std::ofstream(data, std::ios::app) << 'x';
	expect_refused({"--root", root_.string(), "--pidns"}, data_, "size differs");

	// Put back as it was: restores (so the refusals above were about that byte alone).
	fs::resize_file(data, fs::file_size(data) - 1);
	expect_restores({"--root", root_.string()}, under_root(exe_), data);
}

TEST_F(Elsewhere, MissingFileIsRefused)
{
	fs::remove(under_root(data_));
	RunResult c = check({"--root", root_.string(), "--pidns", "--json"});
	EXPECT_EQ(c.exit_code, kExitUnsupported) << c.describe();
	auto j = json::parse(c.out, nullptr, false);
	ASSERT_FALSE(j.is_discarded()) << c.out;
	EXPECT_EQ(j.at("restorable"), false);
	bool named = false;
	for (auto& f : j.at("findings"))
		named |= f.at("status") == "refuse" && f.at("object") == "file " + data_ &&
			 f.at("detail").get<std::string>().find("not found under " + root_.string()) != std::string::npos;
	EXPECT_TRUE(named) << c.out;
	expect_refused({"--root", root_.string(), "--pidns"}, data_, "not found under");
}

// A symlink in the root that points out of it, at a file with exactly the dumped content: resolved beneath the
// root (RESOLVE_IN_ROOT), it leads nowhere, so the file is missing; followed naively, it would be accepted.
TEST_F(Elsewhere, SymlinkCannotLeaveRoot)
{
	fs::path data = under_root(data_);
	fs::path outside = tmp_ / "outside" / "copy";
	fs::create_directories(outside.parent_path());
	fs::copy_file(data, outside);
	fs::remove(data);
	fs::create_symlink(outside, data);
	expect_refused({"--root", root_.string(), "--pidns"}, data_, "not found under");

	// The same through "..": above the root is the root.
	fs::remove(data);
	std::string up;
	for (auto& part : data.parent_path().relative_path())
		up += "../", (void)part;
	fs::create_symlink(up + outside.relative_path().string(), data);
	ASSERT_TRUE(fs::exists(data)) << "the symlink must work when followed naively";
	expect_refused({"--root", root_.string(), "--pidns"}, data_, "not found under");
	RunResult c = check({"--root", root_.string(), "--pidns"});
	EXPECT_EQ(c.exit_code, kExitUnsupported) << c.describe();

	// A symlink that stays inside the root is fine.
	fs::remove(data);
	fs::create_directories(under_root(outside).parent_path());
	fs::copy_file(outside, under_root(outside));
	fs::create_symlink(outside, data);  // absolute: resolved beneath the root
	expect_restores({"--root", root_.string()}, under_root(exe_), under_root(outside));
}

// The same machine, with the executable replaced by a copy (another inode and mtime, same bytes): recognised by
// its content digest, said so, and restored.
TEST_F(Elsewhere, SameMachineCopyMatchesByContent)
{
	fs::create_directories(a_);
	fs::copy(under_root(a_), a_, fs::copy_options::recursive);
	RunResult c = check({"--pidns"});
	EXPECT_EQ(c.exit_code, kExitOk) << c.describe();
	EXPECT_NE(c.out.find("note: file: executable " + exe_.string() + ": another inode or mtime than at the dump, "
			     "same size and content"), std::string::npos) << c.out;
	std::string said = expect_restores({}, exe_, data_);
	EXPECT_NE(said.find("executable " + exe_.string() + ": another inode or mtime than at the dump, same size and "
			    "content"), std::string::npos) << "the restore must say it took a replaced file:\n" << said;

	// One byte of the data file differs. Without --root an open file is reopened as it is now (a process may
	// have written to it), as restore always did; --root / holds it to its digest.
	flip_byte(data_, 7);
	c = check({"--pidns"});
	EXPECT_EQ(c.exit_code, kExitOk) << "files at fds are reopened as they are without --root, as always:\n" << c.out;
	c = check({"--pidns", "--root", "/"});
	EXPECT_EQ(c.exit_code, kExitUnsupported) << c.describe();
	EXPECT_NE(c.out.find(data_ + ": changed since the dump: content differs"), std::string::npos) << c.out;
}

// counter_mem (8 MiB) started and dumped into img.
testing::AssertionResult start_and_dump_counter(Workload& wl, const fs::path& img, bool leave_running)
{
	if (!wl.start("counter_mem", {"--mem-mib", "8"}))
		return testing::AssertionFailure() << wl.error();
	RunResult d = run_bpfckpt(dump_args(wl.pid(), img, leave_running));
	if (d.exit_code != kExitOk)
		return testing::AssertionFailure() << d.describe();
	return testing::AssertionSuccess();
}

// On the machine the image was taken on, with its PIDs free, there is nothing to say; with a PID taken, there is.
TEST(ElsewhereCheck, CleanMachineAndPidInUse)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	Workload wl;
	fs::path img = tmp / "img";
	ASSERT_TRUE(start_and_dump_counter(wl, img, true));

	RunResult c = run_bpfckpt({"restore", "-D", img.string(), "--check"});
	EXPECT_EQ(c.exit_code, kExitUnsupported) << c.describe();
	EXPECT_NE(c.out.find("refuse: pid: pid " + std::to_string(wl.pid()) + ": in use on this machine"),
		  std::string::npos) << c.out;
	EXPECT_NE(c.out.find("--pidns"), std::string::npos) << c.out;

	c = run_bpfckpt({"restore", "-D", img.string(), "--check", "--pidns"});
	EXPECT_EQ(c.exit_code, kExitOk) << c.describe();
	EXPECT_EQ(c.out, "restore would work\n");

	auto index = load_index(img);
	ASSERT_TRUE(index);
	reap_dumped(wl, image_tids(*index));
	c = run_bpfckpt({"restore", "-D", img.string(), "--check", "--json"});
	EXPECT_EQ(c.exit_code, kExitOk) << c.describe();
	auto j = json::parse(c.out, nullptr, false);
	ASSERT_FALSE(j.is_discarded()) << c.out;
	EXPECT_EQ(j.at("restorable"), true);
	EXPECT_TRUE(j.at("findings").empty()) << c.out;
	EXPECT_TRUE(validates(img));
	// --check restores nothing.
	EXPECT_FALSE(exists(wl.pid()));
}

// What differs in the host itself: another kernel (a note), XSAVE features this CPU lacks and a vdso layout that
// cannot be matched (refusals), CPU flags missing here (a note). The image is edited to stand for another machine.
TEST(ElsewhereCheck, HostDifferences)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	Workload wl;
	fs::path img = tmp / "img";
	ASSERT_TRUE(start_and_dump_counter(wl, img, false));
	auto index = load_index(img);
	ASSERT_TRUE(index);
	reap_dumped(wl, image_tids(*index));
	json& host = (*index)["host"];
	host["kernel"] = "5.10.0-elsewhere";
	host["cpu_flags"].push_back("elsewhereflag");
	std::ofstream(img / "index.json", std::ios::trunc) << index->dump();
	RunResult c = run_bpfckpt({"restore", "-D", img.string(), "--check"});
	EXPECT_EQ(c.exit_code, kExitOk) << "notes only:\n" << c.describe();
	EXPECT_NE(c.out.find("note: kernel: "), std::string::npos) << c.out;
	EXPECT_NE(c.out.find("taken on kernel 5.10.0-elsewhere"), std::string::npos) << c.out;
	EXPECT_NE(c.out.find("vdso"), std::string::npos) << "the kernel line says what it means:\n" << c.out;
	EXPECT_NE(c.out.find("note: cpu: cpu flags: the image's CPU had flags this one lacks: elsewhereflag"),
		  std::string::npos) << c.out;

	// An XSAVE feature the image's CPU had (PKRU, bit 9, or AMX) and this one does not enable.
	uint64_t xcr0 = host["xcr0"].get<uint64_t>();
	uint64_t extra = 0;
	for (int bit : {9, 17, 18})
		if (!(xcr0 & (1ull << bit)))
			extra = 1ull << bit;
	ASSERT_NE(extra, 0u);
	host["xcr0"] = xcr0 | extra;
	// A [vvar] one page smaller than this kernel's.
	for (auto& v : (*index)["processes"][0]["vmas"])
		if (v["kind"] == "vvar")
			v["end"] = v["end"].get<uint64_t>() - 4096;
	std::ofstream(img / "index.json", std::ios::trunc) << index->dump();
	c = run_bpfckpt({"restore", "-D", img.string(), "--check"});
	EXPECT_EQ(c.exit_code, kExitUnsupported) << c.describe();
	EXPECT_NE(c.out.find("refuse: xstate: XSAVE features: the image's registers use XSAVE features"),
		  std::string::npos) << c.out;
	EXPECT_NE(c.out.find("refuse: vdso: pid " + std::to_string(wl.pid()) + ": [vvar] is"), std::string::npos)
		<< c.out;
	EXPECT_NE(c.out.find("restore would be refused: 2 problems"), std::string::npos) << c.out;

	// The restore refuses on the same grounds, before anything runs.
	RunResult r = run_bpfckpt({"restore", "-D", img.string(), "-d"});
	EXPECT_EQ(r.exit_code, kExitUnsupported) << r.describe();
	EXPECT_EQ(count_lines(r.err), 1u) << r.err;
	EXPECT_NE(r.err.find("XSAVE features"), std::string::npos) << r.err;
	EXPECT_FALSE(exists(wl.pid()));
}

// Dumps record a digest of every file they name: build-ids for ELF files, XXH3-128 of the rest.
TEST(ElsewhereCheck, DumpRecordsDigests)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	fs::create_directories(tmp / "d");
	Workload wl;
	ASSERT_TRUE(wl.start("dump_state", {"--mem-mib", "8", "--dir", (tmp / "d").string()})) << wl.error();
	fs::path img = tmp / "img";
	RunResult d = run_bpfckpt(dump_args(wl.pid(), img, true));
	ASSERT_EQ(d.exit_code, kExitOk) << d.describe();
	auto index = load_index(img);
	ASSERT_TRUE(index);
	EXPECT_TRUE(validates(img));
	std::set<std::string> elf_digests;
	for (auto& v : index->at("processes").at(0).at("vmas"))
		if (v.at("kind") == "file") {
			ASSERT_TRUE(v.contains("digest")) << v.dump();
			EXPECT_EQ(v.at("digest").get<std::string>().rfind("build_id:", 0), 0u) << v.dump();
			elf_digests.insert(v.at("path").get<std::string>());
		}
	EXPECT_TRUE(elf_digests.count(workload_path("dump_state"))) << "the executable has a digest";
	std::string file_path = wl.ready().at("file_path");
	bool seen = false;
	for (auto& f : index->at("files"))
		if (f.at("path") == file_path) {
			seen = true;
			ASSERT_TRUE(f.contains("digest")) << f.dump();
			EXPECT_EQ(f.at("digest"), "xxh3_128:" + xxh3_128_file(file_path)) << f.dump();
		}
	EXPECT_TRUE(seen) << file_path << " is not among the image's files";
	EXPECT_EQ(wl.verify(), "PASS");
}

}  // namespace
}  // namespace e2e
