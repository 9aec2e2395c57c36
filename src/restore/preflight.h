// What stands between an image and a restore on this machine, found before anything is created: the kernel and
// CPU (vdso/vvar layout, XSAVE features), the PIDs, the cgroup, and every file the image names (locate.h). A real
// restore refuses on the first finding that blocks it; `restore --check` prints them all and restores nothing. One
// implementation for both, so that --check says exactly what a restore would do.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "image/model.h"
#include "restore/locate.h"

namespace bpfckpt::restore {

struct Finding {
	bool blocks = false;                // false: a difference worth knowing that a restore goes through with
	ExitCode exit = ExitCode::failure;  // what a restore exits with when it refuses on this
	std::string check;                  // kernel, cpu, xstate, vdso, pid, cgroup, file
	std::string object;                 // what it is about: "/usr/lib/libc.so.6", "pid 42", "6.18.0"
	std::string detail;                 // what differs
	std::string meaning;                // what that means for the restore

	std::string message() const;        // one line: "OBJECT: DETAIL; MEANING"
};

struct PreflightOptions {
	bool pidns = false;
	std::string cgroup;  // --cgroup
};

std::vector<Finding> preflight(const image::Image& img, const PreflightOptions& opt, const FileLookup& look);

// cgroup images: where the saved tree goes under the cgroup2 mount ("/ci/job1"): the snapped cgroup's path, or
// `override_path` (--cgroup). The root cgroup is refused.
Result<std::string> cgroup_base(const image::Image& img, const std::string& mount, const std::string& override_path);

}  // namespace bpfckpt::restore
