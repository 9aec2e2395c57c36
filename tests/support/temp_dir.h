// A scratch directory for a test: made under `base` (the system's temp directory unless told), removed with
// everything in it on destruction. path() is empty when it could not be made. Header-only, for the unit and the e2e
// tests alike.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace test_support {

class TempDir {
public:
	explicit TempDir(const std::filesystem::path& base = std::filesystem::temp_directory_path())
	{
		std::string tmpl = (base / "bpfckpt-test-XXXXXX").string();
		if (mkdtemp(tmpl.data()))
			path_ = tmpl;
	}
	~TempDir()
	{
		std::error_code ec;
		if (!path_.empty())
			std::filesystem::remove_all(path_, ec);
	}
	TempDir(const TempDir&) = delete;
	TempDir& operator=(const TempDir&) = delete;

	const std::filesystem::path& path() const { return path_; }
	std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
	std::filesystem::path path_;
};

}  // namespace test_support
