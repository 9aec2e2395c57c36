// What the tests of writes around the page cache look at: which pages of a file sit in the page cache right now
// (mincore of a shared mapping of it). Header-only, for the unit and the e2e tests alike.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace test_support {

// One entry per page of the file, true where it is cached; empty when the file can't be opened, mapped or asked.
inline std::vector<bool> cached_pages(const std::string& path)
{
	std::vector<bool> out;
	int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return out;
	off_t size = lseek(fd, 0, SEEK_END);
	void* m = size > 0 ? mmap(nullptr, size_t(size), PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
	::close(fd);
	if (m == MAP_FAILED)
		return out;
	long page = sysconf(_SC_PAGESIZE);
	std::vector<unsigned char> vec((size_t(size) + size_t(page) - 1) / size_t(page));
	if (mincore(m, size_t(size), vec.data()) == 0)
		for (unsigned char c : vec)
			out.push_back(c & 1);
	munmap(m, size_t(size));
	return out;
}

}  // namespace test_support
