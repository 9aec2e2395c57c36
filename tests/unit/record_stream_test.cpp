// The collector's stream parser against crafted streams: well-formed ones, and every way sizes can lie.
#include <gtest/gtest.h>

#include <cstring>

#include "dump/collector.h"

using namespace bpfckpt::dump;

namespace {

template <typename T>
void put(std::string& s, const T& v)
{
	s.append(reinterpret_cast<const char*>(&v), sizeof(v));
}

void put_path(std::string& s, uint16_t tag, const std::string& path)
{
	bck_hdr h{BCK_REC_PATH, tag, uint32_t((sizeof(bck_hdr) + path.size() + 1 + 7) & ~7u)};
	put(s, h);
	std::string body = path;
	body.resize(h.size - sizeof(h), '\0');
	s += body;
}

bck_task task(uint32_t tid, uint32_t tgid)
{
	bck_task t{};
	t.hdr = {BCK_REC_TASK, 0, sizeof(bck_task)};
	t.tid = tid;
	t.tgid = tgid;
	return t;
}

}  // namespace

TEST(RecordStream, TasksWithPathsAndSigactions)
{
	std::string s;
	put(s, task(10, 10));
	bck_sigactions sa{};
	sa.hdr = {BCK_REC_SIGACTIONS, 0, sizeof(sa)};
	sa.act[10].handler = 0x1234;
	put(s, sa);
	put_path(s, BCK_PATH_EXE, "/usr/bin/x");
	put_path(s, BCK_PATH_CWD, "/tmp");
	put_path(s, BCK_PATH_ROOT, "/");
	put(s, task(11, 10));

	auto r = parse_task_stream(s);
	ASSERT_TRUE(r) << r.error().describe();
	ASSERT_EQ(r->size(), 2u);
	EXPECT_EQ((*r)[0].exe, "/usr/bin/x");
	EXPECT_EQ((*r)[0].cwd, "/tmp");
	EXPECT_EQ((*r)[0].root, "/");
	ASSERT_TRUE((*r)[0].sigactions);
	EXPECT_EQ((*r)[0].sigactions->act[10].handler, 0x1234u);
	EXPECT_EQ((*r)[1].rec.tid, 11u);
	EXPECT_FALSE((*r)[1].exe_seen);
}

TEST(RecordStream, EmptyPathMarksUnresolvable)
{
	std::string s;
	put(s, task(10, 10));
	put(s, bck_hdr{BCK_REC_PATH, BCK_PATH_CWD, sizeof(bck_hdr)});
	auto r = parse_task_stream(s);
	ASSERT_TRUE(r);
	EXPECT_TRUE((*r)[0].cwd_seen);
	EXPECT_EQ((*r)[0].cwd, "");
}

TEST(RecordStream, RejectsSizesThatLie)
{
	std::string s;
	put(s, task(10, 10));
	std::string truncated = s.substr(0, s.size() - 8);
	EXPECT_FALSE(parse_task_stream(truncated));

	std::string zero;
	put(zero, bck_hdr{BCK_REC_TASK, 0, 0});
	EXPECT_FALSE(parse_task_stream(zero));

	std::string wrong;
	put(wrong, bck_hdr{BCK_REC_TASK, 0, 16});
	wrong.resize(16, '\0');
	EXPECT_FALSE(parse_task_stream(wrong));

	std::string orphan;
	put_path(orphan, BCK_PATH_EXE, "/x");
	EXPECT_FALSE(parse_task_stream(orphan));
}

TEST(RecordStream, FilesAndVmasCarryTheirPaths)
{
	std::string s;
	bck_file f{};
	f.hdr = {BCK_REC_FILE, 0, sizeof(f)};
	f.fd = 3;
	put(s, f);
	put_path(s, BCK_PATH_FILE, "/etc/hosts");
	f.fd = 4;
	put(s, f);
	auto r = parse_file_stream(s);
	ASSERT_TRUE(r) << r.error().describe();
	ASSERT_EQ(r->size(), 2u);
	EXPECT_EQ((*r)[0].path, "/etc/hosts");
	EXPECT_FALSE((*r)[1].path_seen);

	std::string v;
	bck_vma m{};
	m.hdr = {BCK_REC_VMA, 0, sizeof(m)};
	put(v, m);
	put_path(v, BCK_PATH_FILE, "/wrong-tag");
	EXPECT_FALSE(parse_vma_stream(v));
}
