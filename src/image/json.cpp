#include "image/json.h"

#include <optional>

namespace bpfckpt::image {

using nlohmann::json;

// Types with optional members are written by hand (below): an absent optional is an absent key.
void to_json(json& j, const Vma& v);
void from_json(const json& j, Vma& v);
void to_json(json& j, const File& f);
void from_json(const json& j, File& f);

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(BlobRef, blob, offset, size)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PageRun, start, npages, blob_offset)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ZeroRun, start, npages)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Regs, gpr, xstate, fpregs)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SyscallState, in_syscall, nr, ret)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Thread, tid, comm, state, regs, syscall, sigmask, pending, siginfo, sas_ss_sp,
				   sas_ss_size, sas_ss_flags, rseq, rseq_len, rseq_sig, clear_child_tid, robust_list, cpus,
				   policy, nice, rt_priority)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Creds, uid, euid, suid, fsuid, gid, egid, sgid, fsgid, cap_inheritable,
				   cap_permitted, cap_effective, cap_bset, cap_ambient, securebits, groups)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Rlimit, name, cur, max)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Sigaction, signo, handler, flags, restorer, mask)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Itimer, value_ns, interval_ns)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PosixTimer, id, clock, notify, signo, tid, sigval, value_ns, interval_ns)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Mm, start_code, end_code, start_data, end_data, start_brk, brk, start_stack,
				   arg_start, arg_end, env_start, env_end, auxv)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Fd, fd, cloexec, file)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Process, pid, ppid, pgid, sid, comm, state, exit_code, exe, cwd, root,
				   personality, umask, cgroup_id, start_time, mm_key, cgroup, creds, rlimits, sigactions,
				   shared_pending, shared_siginfo, it_real, it_prof, it_virt, posix_timers, mm, threads, vmas,
				   fds, pages_blob)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Pipe, ino, capacity, data)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Shmem, id, kind, path, dev, ino, size, pages, blob)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Blob, name, size, xxh3)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Host, kernel, arch, hostname, page_size, xcr0, xstate_size, cpu_flags)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Target, kind, pid, cgroup, leave_running)

void to_json(json& j, const Vma& v)
{
	j = json{{"start", v.start}, {"end", v.end}, {"prot", v.prot}, {"shared", v.shared}, {"vm_flags", v.vm_flags},
		 {"offset", v.offset}, {"kind", v.kind}, {"path", v.path}, {"dev", v.dev}, {"ino", v.ino},
		 {"file_size", v.file_size}, {"mtime_sec", v.mtime_sec}, {"mtime_nsec", v.mtime_nsec},
		 {"pages", v.pages}, {"inherit", v.inherit}, {"zero", v.zero}};
	if (v.shmem)
		j["shmem"] = *v.shmem;
	if (v.digest)
		j["digest"] = *v.digest;
}

void from_json(const json& j, Vma& v)
{
	j.at("start").get_to(v.start);
	j.at("end").get_to(v.end);
	j.at("prot").get_to(v.prot);
	j.at("shared").get_to(v.shared);
	j.at("vm_flags").get_to(v.vm_flags);
	j.at("offset").get_to(v.offset);
	j.at("kind").get_to(v.kind);
	j.at("path").get_to(v.path);
	j.at("dev").get_to(v.dev);
	j.at("ino").get_to(v.ino);
	j.at("file_size").get_to(v.file_size);
	j.at("mtime_sec").get_to(v.mtime_sec);
	j.at("mtime_nsec").get_to(v.mtime_nsec);
	j.at("pages").get_to(v.pages);
	j.at("inherit").get_to(v.inherit);
	j.at("zero").get_to(v.zero);
	if (j.contains("shmem"))
		v.shmem = j.at("shmem").get<uint32_t>();
	if (j.contains("digest"))
		v.digest = j.at("digest").get<std::string>();
}

void to_json(json& j, const File& f)
{
	j = json{{"id", f.id}, {"kind", f.kind}, {"path", f.path}, {"flags", f.flags}, {"pos", f.pos},
		 {"dev", f.dev}, {"ino", f.ino}, {"rdev", f.rdev}, {"mode", f.mode}, {"size", f.size},
		 {"mtime_sec", f.mtime_sec}, {"mtime_nsec", f.mtime_nsec}, {"external", f.external},
		 {"external_key", f.external_key}};
	if (f.pipe)
		j["pipe"] = *f.pipe;
	if (f.digest)
		j["digest"] = *f.digest;
}

void from_json(const json& j, File& f)
{
	j.at("id").get_to(f.id);
	j.at("kind").get_to(f.kind);
	j.at("path").get_to(f.path);
	j.at("flags").get_to(f.flags);
	j.at("pos").get_to(f.pos);
	j.at("dev").get_to(f.dev);
	j.at("ino").get_to(f.ino);
	j.at("rdev").get_to(f.rdev);
	j.at("mode").get_to(f.mode);
	j.at("size").get_to(f.size);
	j.at("mtime_sec").get_to(f.mtime_sec);
	j.at("mtime_nsec").get_to(f.mtime_nsec);
	j.at("external").get_to(f.external);
	j.at("external_key").get_to(f.external_key);
	if (j.contains("pipe"))
		f.pipe = j.at("pipe").get<uint64_t>();
	if (j.contains("digest"))
		f.digest = j.at("digest").get<std::string>();
}

json to_json_value(const Image& img)
{
	json j{{"format_version", img.format_version},
	       {"tool", {{"name", "bpfckpt"}, {"version", img.tool_version}}},
	       {"created", img.created},
	       {"host", img.host},
	       {"target", img.target},
	       {"id", img.id},
	       {"parent_id", img.parent_id},
	       {"cgroups", img.cgroups},
	       {"processes", img.processes},
	       {"files", img.files},
	       {"pipes", img.pipes},
	       {"shmem", img.shmem},
	       {"blobs", img.blobs}};
	if (img.parent)
		j["parent"] = *img.parent;
	return j;
}

namespace {

// The index never holds a fraction: a number nlohmann stored as a float is out of any integer range we read.
bool has_float(const json& j)
{
	if (j.is_number_float())
		return true;
	if (j.is_structured())
		for (const auto& v : j)
			if (has_float(v))
				return true;
	return false;
}

// Where two documents first differ ("/processes/0/pid"), nullopt when they are the same. Stricter than json's ==,
// which takes -1 and 18446744073709551615 for equal (it compares them as signed): a negative number read into an
// unsigned field must not pass.
std::optional<std::string> first_difference(const json& a, const json& b, const std::string& at)
{
	if (a.is_number_integer() && b.is_number_integer() && a.is_number_unsigned() != b.is_number_unsigned()) {
		const json& sign = a.is_number_unsigned() ? b : a;
		if (sign.get<int64_t>() < 0)
			return at;
	}
	if (a.type() != b.type() || a.size() != b.size() || !a.is_structured())
		return a == b ? std::nullopt : std::optional(at);
	if (a.is_array()) {
		for (size_t i = 0; i < a.size(); i++)
			if (auto d = first_difference(a[i], b[i], at + "/" + std::to_string(i)))
				return d;
		return std::nullopt;
	}
	for (const auto& [key, value] : a.items()) {
		if (!b.contains(key))
			return at + "/" + key;
		if (auto d = first_difference(value, b.at(key), at + "/" + key))
			return d;
	}
	return std::nullopt;
}

}  // namespace

Result<Image> from_json_value(const json& j)
{
	if (has_float(j))
		return fail(ExitCode::bad_image, "index.json: a number that is not an integer in range");
	Image img;
	try {
		j.at("format_version").get_to(img.format_version);
		if (img.format_version != kFormatVersion)
			return fail(ExitCode::bad_image, "format_version {} is not {}, the only one this bpfckpt reads",
				    img.format_version, kFormatVersion);
		j.at("tool").at("version").get_to(img.tool_version);
		j.at("created").get_to(img.created);
		j.at("host").get_to(img.host);
		j.at("target").get_to(img.target);
		j.at("id").get_to(img.id);
		j.at("parent_id").get_to(img.parent_id);
		j.at("cgroups").get_to(img.cgroups);
		j.at("processes").get_to(img.processes);
		j.at("files").get_to(img.files);
		j.at("pipes").get_to(img.pipes);
		j.at("shmem").get_to(img.shmem);
		j.at("blobs").get_to(img.blobs);
		if (j.contains("parent"))
			img.parent = j.at("parent").get<std::string>();
	} catch (const json::exception& e) {
		return fail(ExitCode::bad_image, "index.json: {}", e.what());
	}
	// Strictness by round trip: a value narrowed on the way in (4294967396 read as a 32-bit 100), a key we do
	// not know, a wrongly typed optional: the model written back differs from what was read.
	if (auto where = first_difference(to_json_value(img), j, ""))
		return fail(ExitCode::bad_image, "index.json: {}: unknown key or value out of range", *where);
	return img;
}

Result<Image> parse_index(const std::string& text)
{
	json j = json::parse(text, nullptr, false);
	if (j.is_discarded())
		return fail(ExitCode::bad_image, "index.json is not valid JSON");
	return from_json_value(j);
}

}  // namespace bpfckpt::image
