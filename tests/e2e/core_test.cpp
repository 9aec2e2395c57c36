// Acceptance tests for `bpfckpt core` (issue 6): the gdb_threads workload is dumped with -R, its image written as a
// core file, and real gdb (-batch) opens the core with the executable: threads, each thread's backtrace through its
// own function, a global, a local in a frame, registers and strings read as the workload holds them. Then the bad
// inputs: an image missing the pages of a mapping, an executable changed since the dump, a --pid the image does not
// hold, an output that is not a directory.
#include <elf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "harness.h"

namespace e2e {
namespace {

// Exit codes of bpfckpt (src/common/exit_codes.h).
constexpr int kExitOk = 0, kExitNoTarget = 3, kExitIo = 7;

std::string hex(uint64_t v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "0x%llx", (unsigned long long)v);
	return buf;
}

std::optional<std::string> find_on_path(const std::string& name)
{
	const char* path = getenv("PATH");
	std::stringstream dirs(path ? path : "/usr/bin:/bin");
	std::string dir;
	while (std::getline(dirs, dir, ':'))
		if (!dir.empty() && access((dir + "/" + name).c_str(), X_OK) == 0)
			return dir + "/" + name;
	return std::nullopt;
}

// gdb, or the test is skipped (failed under CI=true).
#define REQUIRE_GDB(var)                                                                              \
	auto var##_found = find_on_path("gdb");                                                         \
	if (!var##_found)                                                                               \
		SKIP_OR_FAIL("gdb is not installed (scripts/install-deps.sh installs it)");             \
	const std::string var = *var##_found

// gdb -batch on the executable and a core, running `commands` in order. debuginfod off: no network, no prompt.
RunResult run_gdb(const std::string& gdb, const std::string& exe, const fs::path& core,
		  const std::vector<std::string>& commands)
{
	std::vector<std::string> argv{gdb, "-batch", "-nx", "-iex", "set debuginfod enabled off"};
	for (const std::string& c : commands) {
		argv.push_back("-ex");
		argv.push_back(c);
	}
	argv.push_back(exe);
	argv.push_back(core.string());
	return run(argv, RunOptions{.timeout = 120s});
}

// gdb's `info threads`: LWP -> gdb thread number.
std::map<int, int> gdb_threads(const std::string& out)
{
	std::map<int, int> ids;
	std::regex line(R"(^\*?\s*(\d+)\s+Thread 0x[0-9a-f]+ \(LWP (\d+)\))");
	std::istringstream in(out);
	for (std::string l; std::getline(in, l);) {
		std::smatch m;
		if (std::regex_search(l, m, line))
			ids[std::stoi(m[2])] = std::stoi(m[1]);
	}
	return ids;
}

// gdb's `thread apply all bt`: LWP -> that thread's backtrace.
std::map<int, std::string> gdb_backtraces(const std::string& out)
{
	std::map<int, std::string> bts;
	std::regex head(R"(^Thread \d+ \(Thread 0x[0-9a-f]+ \(LWP (\d+)\)\):)");
	std::istringstream in(out);
	std::string* cur = nullptr;
	for (std::string l; std::getline(in, l);) {
		std::smatch m;
		if (std::regex_search(l, m, head))
			cur = &bts[std::stoi(m[1])];
		else if (cur && l.rfind("#", 0) == 0)
			*cur += l + "\n";
	}
	return bts;
}

// The number of the frame in `bt` that runs `function`, or -1.
int frame_of(const std::string& bt, const std::string& function)
{
	std::regex frame(R"(^#(\d+)\s+(?:0x[0-9a-f]+ in )?)" + function + R"( \()");
	std::istringstream in(bt);
	for (std::string l; std::getline(in, l);) {
		std::smatch m;
		if (std::regex_search(l, m, frame))
			return std::stoi(m[1]);
	}
	return -1;
}

// Every `$N = 0x...` gdb printed, in order.
std::vector<std::string> printed_hex(const std::string& out)
{
	std::vector<std::string> values;
	std::regex value(R"(\$\d+ = (0x[0-9a-f]+))");
	for (auto it = std::sregex_iterator(out.begin(), out.end(), value); it != std::sregex_iterator(); ++it)
		values.push_back((*it)[1]);
	return values;
}

std::optional<std::string> read_bytes(const fs::path& p)
{
	std::ifstream f(p, std::ios::binary);
	if (!f)
		return std::nullopt;
	return std::string(std::istreambuf_iterator<char>(f), {});
}

// The program headers of a core, after checking its ELF header.
std::vector<Elf64_Phdr> core_phdrs(const std::string& core)
{
	std::vector<Elf64_Phdr> out;
	Elf64_Ehdr eh;
	EXPECT_GE(core.size(), sizeof(eh));
	if (core.size() < sizeof(eh))
		return out;
	std::memcpy(&eh, core.data(), sizeof(eh));
	EXPECT_EQ(std::memcmp(eh.e_ident, ELFMAG, SELFMAG), 0);
	EXPECT_EQ(eh.e_ident[EI_CLASS], ELFCLASS64);
	EXPECT_EQ(eh.e_type, ET_CORE);
	EXPECT_EQ(eh.e_machine, EM_X86_64);
	EXPECT_EQ(eh.e_phentsize, sizeof(Elf64_Phdr));
	if (eh.e_phoff + uint64_t(eh.e_phnum) * sizeof(Elf64_Phdr) > core.size())
		return out;
	out.resize(eh.e_phnum);
	std::memcpy(out.data(), core.data() + eh.e_phoff, out.size() * sizeof(Elf64_Phdr));
	return out;
}

const json& only_process(const json& index)
{
	return index.at("processes").at(0);
}

// A gdb_threads workload, dumped with -R into tmp/img.
class CoreTest : public testing::Test {
protected:
	void dump()
	{
		ASSERT_TRUE(wl_.start("gdb_threads")) << wl_.error();
		RunResult r = run_bpfckpt({"dump", "-t", std::to_string(wl_.pid()), "-D", img().string(), "-R"});
		ASSERT_EQ(r.exit_code, kExitOk) << r.describe();
		auto index = load_index(img());
		ASSERT_TRUE(index) << "no parsable index.json in " << img();
		index_ = *index;
		ASSERT_EQ(index_.at("processes").size(), 1u);
	}
	// index_, as edited by the test, replaces the image's index.json (no checksum covers it; validation still runs).
	void save_index()
	{
		std::ofstream f(img() / "index.json", std::ios::trunc);
		f << index_.dump(1, '\t');
		f.close();
		ASSERT_FALSE(f.fail()) << "rewrite " << img() / "index.json";
	}
	fs::path img() const { return tmp_ / "img"; }
	fs::path out() const { return tmp_ / "cores"; }
	fs::path core() const { return out() / ("core." + std::to_string(wl_.pid())); }
	std::string exe() const { return workload_path("gdb_threads"); }

	TempDir tmp_;
	Workload wl_;
	json index_;
};

// --- the acceptance test -----------------------------------------------------------------------------------------

TEST_F(CoreTest, GdbSeesThreadsFramesAndValues)
{
	REQUIRE_ROOT_OR_SKIP();
	REQUIRE_GDB(gdb);
	ASSERT_NO_FATAL_FAILURE(dump());
	const json& ready = wl_.ready();

	RunResult r = run_bpfckpt({"core", "-D", img().string(), "-o", out().string(), "--json"});
	ASSERT_EQ(r.exit_code, kExitOk) << r.describe();
	json report = json::parse(r.out, nullptr, false);
	ASSERT_FALSE(report.is_discarded()) << "--json printed no JSON:\n" << r.out;
	ASSERT_EQ(report.at("cores").size(), 1u) << r.out;
	EXPECT_EQ(report.at("cores").at(0).at("path").get<std::string>(), core().string());
	EXPECT_EQ(report.at("cores").at(0).at("threads").get<int>(), 5);

	struct stat st {};
	ASSERT_EQ(stat(out().c_str(), &st), 0);
	EXPECT_EQ(st.st_mode & 0777, 0700u) << "the output directory";
	ASSERT_EQ(stat(core().c_str(), &st), 0) << "no " << core();
	EXPECT_EQ(st.st_mode & 0777, 0600u) << "the core holds process memory";
	auto bytes = read_bytes(core());
	ASSERT_TRUE(bytes);
	auto phdrs = core_phdrs(*bytes);
	const json& proc = only_process(index_);
	ASSERT_EQ(phdrs.size(), 1 + proc.at("vmas").size()) << "a PT_NOTE and a PT_LOAD per vma";
	EXPECT_EQ(phdrs[0].p_type, uint32_t(PT_NOTE));

	// One session for what needs no frame numbers.
	uint64_t rip = proc.at("threads").at(0).at("regs").at("gpr").at("rip").get<uint64_t>();
	RunResult g = run_gdb(gdb, exe(), core(),
			      {"info threads", "thread apply all bt", "print/x gdb_global", "print/x gdb_runtime_global",
			       "info registers rip", "x/s " + std::to_string(ready.at("literal_addr").get<uint64_t>()),
			       "x/s " + std::to_string(ready.at("heap_addr").get<uint64_t>())});
	ASSERT_EQ(g.exit_code, 0) << g.describe();
	SCOPED_TRACE("gdb printed:\n" + g.out + "\nstderr:\n" + g.err);

	auto ids = gdb_threads(g.out);
	EXPECT_EQ(ids.size(), 5u) << "info threads: the main thread and 4 workers";
	for (const auto& tid : ready.at("tids"))
		EXPECT_TRUE(ids.contains(tid.get<int>())) << "info threads lacks LWP " << tid;
	EXPECT_EQ(ids[wl_.pid()], 1) << "the leader is the current thread";

	auto bts = gdb_backtraces(g.out);
	EXPECT_NE(bts[wl_.pid()].find(" main ("), std::string::npos) << "the main thread's backtrace";
	for (const auto& w : ready.at("workers")) {
		int tid = w.at("tid").get<int>();
		std::string fn = w.at("function").get<std::string>();
		EXPECT_GE(frame_of(bts[tid], fn), 0) << "LWP " << tid << " is not in " << fn;
		for (const auto& other : ready.at("workers")) {
			if (other.at("tid") == w.at("tid"))
				continue;
			EXPECT_LT(frame_of(bts[tid], other.at("function").get<std::string>()), 0)
				<< "LWP " << tid << " shows another worker's function";
		}
	}

	auto values = printed_hex(g.out);
	ASSERT_GE(values.size(), 2u);
	EXPECT_EQ(values[0], hex(ready.at("global").get<uint64_t>()));
	EXPECT_EQ(values[1], hex(ready.at("runtime_global").get<uint64_t>()));
	EXPECT_TRUE(std::regex_search(g.out, std::regex("rip\\s+" + hex(rip) + "\\b"))) << "rip " << hex(rip);
	EXPECT_NE(g.out.find("\"" + ready.at("literal").get<std::string>() + "\""), std::string::npos)
		<< "x/s of the string literal (a page of the executable the image leaves out)";
	EXPECT_NE(g.out.find("\"" + ready.at("heap").get<std::string>() + "\""), std::string::npos)
		<< "x/s of the heap string";

	// Each worker's local, in its own thread and frame.
	std::vector<std::string> cmds;
	std::vector<std::string> want;
	for (const auto& w : ready.at("workers")) {
		int tid = w.at("tid").get<int>();
		int frame = frame_of(bts[tid], w.at("function").get<std::string>());
		ASSERT_GE(frame, 0);
		cmds.insert(cmds.end(), {"thread " + std::to_string(ids[tid]), "frame " + std::to_string(frame),
					 "print/x " + w.at("local").get<std::string>()});
		want.push_back(hex(w.at("value").get<uint64_t>()));
	}
	RunResult locals = run_gdb(gdb, exe(), core(), cmds);
	ASSERT_EQ(locals.exit_code, 0) << locals.describe();
	EXPECT_EQ(printed_hex(locals.out), want) << "gdb printed:\n" << locals.out << "\nstderr:\n" << locals.err;

	// Writing the core left the dumped workload alone.
	EXPECT_EQ(wl_.verify(), "PASS");
}

// --- bad input -----------------------------------------------------------------------------------------------------

// An image with no page of a mapping: gdb still opens the core, and that range reads as zeros.
TEST_F(CoreTest, MissingPagesReadAsZeros)
{
	REQUIRE_ROOT_OR_SKIP();
	REQUIRE_GDB(gdb);
	ASSERT_NO_FATAL_FAILURE(dump());
	const json& ready = wl_.ready();
	uint64_t region = ready.at("region_addr").get<uint64_t>();

	// Drop the pages of the vma holding the region: the index stays valid, those pages are simply not in it.
	json& vmas = index_.at("processes").at(0).at("vmas");
	json* hit = nullptr;
	for (json& v : vmas)
		if (v.at("start").get<uint64_t>() <= region && region < v.at("end").get<uint64_t>())
			hit = &v;
	ASSERT_TRUE(hit) << "no vma holds the region at " << hex(region);
	ASSERT_FALSE(hit->at("pages").empty()) << "the dump saved no page of the region";
	(*hit)["pages"] = json::array();
	ASSERT_NO_FATAL_FAILURE(save_index());

	RunResult r = run_bpfckpt({"core", "-D", img().string(), "-o", out().string(), "--pid",
				   std::to_string(wl_.pid())});
	ASSERT_EQ(r.exit_code, kExitOk) << r.describe();
	auto bytes = read_bytes(core());
	ASSERT_TRUE(bytes) << "no " << core();
	bool found = false;
	for (const Elf64_Phdr& ph : core_phdrs(*bytes))
		if (ph.p_type == PT_LOAD && ph.p_vaddr == hit->at("start").get<uint64_t>()) {
			found = true;
			EXPECT_EQ(ph.p_filesz, ph.p_memsz) << "the missing pages are in the core, as zeros";
			ASSERT_LE(ph.p_offset + ph.p_filesz, bytes->size());
			EXPECT_EQ(std::string(bytes->data() + ph.p_offset, ph.p_filesz), std::string(ph.p_filesz, '\0'));
		}
	EXPECT_TRUE(found) << "no PT_LOAD for the vma at " << hex(hit->at("start").get<uint64_t>());

	RunResult g = run_gdb(gdb, exe(), core(),
			      {"info threads", "x/2xg " + std::to_string(region), "print/x gdb_runtime_global"});
	ASSERT_EQ(g.exit_code, 0) << g.describe();
	SCOPED_TRACE("gdb printed:\n" + g.out + "\nstderr:\n" + g.err);
	EXPECT_EQ(gdb_threads(g.out).size(), 5u);
	EXPECT_TRUE(std::regex_search(g.out, std::regex(hex(region) + ":\\s+0x0+\\s+0x0+\\n")))
		<< "the region reads as zeros";
	auto values = printed_hex(g.out);
	ASSERT_EQ(values.size(), 1u);
	EXPECT_EQ(values[0], hex(ready.at("runtime_global").get<uint64_t>()));
	EXPECT_EQ(wl_.verify(), "PASS");
}

// The executable is not the file the dump saw (here: the image records another mtime): its pages the process never
// wrote cannot be taken from it, so its unwritten mappings get no bytes in the core (p_filesz 0) and gdb reads them
// from the executable it is given, as with a kernel's core. A warning names the file.
TEST_F(CoreTest, ChangedExecutableIsLeftToGdb)
{
	REQUIRE_ROOT_OR_SKIP();
	REQUIRE_GDB(gdb);
	ASSERT_NO_FATAL_FAILURE(dump());
	const json& ready = wl_.ready();
	std::set<uint64_t> unwritten;  // the executable's mappings without a saved page
	for (json& v : index_.at("processes").at(0).at("vmas")) {
		if (v.at("path").get<std::string>() != exe())
			continue;
		v["mtime_sec"] = v.at("mtime_sec").get<int64_t>() - 1000;
		if (v.at("pages").empty())
			unwritten.insert(v.at("start").get<uint64_t>());
	}
	ASSERT_FALSE(unwritten.empty()) << "the image holds no mapping of " << exe() << " without saved pages";
	ASSERT_NO_FATAL_FAILURE(save_index());

	RunResult r = run_bpfckpt({"core", "-D", img().string(), "-o", out().string()});
	ASSERT_EQ(r.exit_code, kExitOk) << r.describe();
	EXPECT_EQ(count_lines(r.err), 1u) << "one warning:\n" << r.err;
	EXPECT_NE(r.err.find(exe()), std::string::npos) << "the warning names the executable:\n" << r.err;
	auto bytes = read_bytes(core());
	ASSERT_TRUE(bytes) << "no " << core();
	size_t empty = 0;
	for (const Elf64_Phdr& ph : core_phdrs(*bytes))
		if (ph.p_type == PT_LOAD && unwritten.contains(ph.p_vaddr)) {
			EXPECT_EQ(ph.p_filesz, 0u) << "mapping " << hex(ph.p_vaddr) << " of the changed executable";
			empty++;
		}
	EXPECT_EQ(empty, unwritten.size());

	RunResult g = run_gdb(gdb, exe(), core(),
			      {"thread apply all bt", "x/s " + std::to_string(ready.at("literal_addr").get<uint64_t>())});
	ASSERT_EQ(g.exit_code, 0) << g.describe();
	SCOPED_TRACE("gdb printed:\n" + g.out + "\nstderr:\n" + g.err);
	auto bts = gdb_backtraces(g.out);
	for (const auto& w : ready.at("workers"))
		EXPECT_GE(frame_of(bts[w.at("tid").get<int>()], w.at("function").get<std::string>()), 0);
	EXPECT_NE(g.out.find("\"" + ready.at("literal").get<std::string>() + "\""), std::string::npos)
		<< "x/s of the literal, read by gdb from the executable";
	EXPECT_EQ(wl_.verify(), "PASS");
}

TEST_F(CoreTest, UnknownPidIsRefused)
{
	REQUIRE_ROOT_OR_SKIP();
	ASSERT_NO_FATAL_FAILURE(dump());
	// pid 1 is never in an image (dump refuses it).
	RunResult r = run_bpfckpt({"core", "-D", img().string(), "-o", out().string(), "--pid", "1"});
	EXPECT_EQ(r.exit_code, kExitNoTarget) << r.describe();
	EXPECT_EQ(count_lines(r.err), 1u) << "stderr must be one line:\n" << r.err;
	EXPECT_NE(r.err.find("pid 1:"), std::string::npos) << r.err;
	EXPECT_NE(r.err.find(std::to_string(wl_.pid())), std::string::npos) << "the message lists the image's pids";
	EXPECT_FALSE(fs::exists(out())) << "a refused core command created " << out();
	EXPECT_EQ(wl_.verify(), "PASS");
}

TEST_F(CoreTest, OutputThatIsAFileIsRefused)
{
	REQUIRE_ROOT_OR_SKIP();
	ASSERT_NO_FATAL_FAILURE(dump());
	std::ofstream(out()) << "not a directory";
	RunResult r = run_bpfckpt({"core", "-D", img().string(), "-o", out().string()});
	EXPECT_EQ(r.exit_code, kExitIo) << r.describe();
	EXPECT_EQ(count_lines(r.err), 1u) << "stderr must be one line:\n" << r.err;
	EXPECT_NE(r.err.find(out().string()), std::string::npos) << r.err;
	EXPECT_EQ(read_file(out()), "not a directory");
	EXPECT_EQ(wl_.verify(), "PASS");
}

}  // namespace
}  // namespace e2e
