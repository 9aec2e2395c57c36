// Loads the three BPF iterators and reads their record streams. All filtering happens in the kernel: the task
// iterator can select a subtree or a cgroup by itself (to discover the targets), and once the targets are frozen
// their tgids go into the shared `targets` map that every iterator checks.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bpfckpt/records.h"
#include "common/result.h"

namespace bpfckpt::dump {

struct RawTask {
	bck_task rec{};
	std::optional<bck_sigactions> sigactions;  // leaders only
	std::vector<bck_posix_timer> timers;
	std::string exe, cwd, root;                 // leaders only; empty when unresolvable
	bool exe_seen = false, cwd_seen = false, root_seen = false;
};

struct RawFile {
	bck_file rec{};
	std::string path;
	bool path_seen = false;
};

struct RawVma {
	bck_vma rec{};
	std::string path;
	bool path_seen = false;
};

class Collector {
public:
	static Result<std::unique_ptr<Collector>> open();
	~Collector();

	// Discovery: root and every task below it in the real_parent tree, or every task in a cgroup v2 subtree.
	Result<std::vector<RawTask>> tasks_below(pid_t root);
	Result<std::vector<RawTask>> tasks_in_cgroup(uint64_t cgroup_id);

	// The frozen set: from here on every iterator reports these processes only.
	Status set_targets(const std::vector<pid_t>& tgids);
	Result<std::vector<RawTask>> tasks();
	Result<std::vector<RawFile>> files();
	Result<std::vector<RawVma>> vmas();

	struct Impl;

private:
	explicit Collector(std::unique_ptr<Impl> impl);
	std::unique_ptr<Impl> impl_;
};

// Record stream parsers, separate so that unit tests can feed them crafted bytes.
Result<std::vector<RawTask>> parse_task_stream(const std::string& bytes);
Result<std::vector<RawFile>> parse_file_stream(const std::string& bytes);
Result<std::vector<RawVma>> parse_vma_stream(const std::string& bytes);

}  // namespace bpfckpt::dump
