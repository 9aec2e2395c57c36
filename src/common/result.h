// Recoverable errors as values: Result<T> carries either T or an Error with errno, a message that names the object
// and the reason, and the exit code the CLI should use. Context is added on the way up and logged once, in main.
#pragma once

#include <cerrno>
#include <cstring>
#include <expected>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "common/exit_codes.h"

namespace bpfckpt {

struct Error {
	ExitCode exit = ExitCode::failure;
	int err = 0;  // errno, 0 when none applies
	std::string msg;

	std::string describe() const { return err ? fmt::format("{}: {}", msg, std::strerror(err)) : msg; }
};

template <typename T>
using Result = std::expected<T, Error>;

using Status = Result<void>;

template <typename... Args>
std::unexpected<Error> fail(ExitCode exit, fmt::format_string<Args...> f, Args&&... args)
{
	return std::unexpected(Error{exit, 0, fmt::format(f, std::forward<Args>(args)...)});
}

// The same, with the errno of the call that failed.
template <typename... Args>
std::unexpected<Error> fail_errno(ExitCode exit, int err, fmt::format_string<Args...> f, Args&&... args)
{
	return std::unexpected(Error{exit, err, fmt::format(f, std::forward<Args>(args)...)});
}

// The exit code most errnos deserve when nothing better is known.
ExitCode exit_for_errno(int err);

template <typename... Args>
std::unexpected<Error> fail_sys(int err, fmt::format_string<Args...> f, Args&&... args)
{
	return std::unexpected(Error{exit_for_errno(err), err, fmt::format(f, std::forward<Args>(args)...)});
}

// Prefixes an error with the object it happened on: "pid 42: " + "read vma 7f..: EFAULT".
template <typename T, typename... Args>
Result<T> context(Result<T>&& r, fmt::format_string<Args...> f, Args&&... args)
{
	if (!r)
		r.error().msg = fmt::format(f, std::forward<Args>(args)...) + ": " + r.error().msg;
	return std::move(r);
}

}  // namespace bpfckpt

#define BCK_TRY(expr)                                    \
	({                                               \
		auto _r = (expr);                        \
		if (!_r)                                 \
			return std::unexpected(std::move(_r.error())); \
		std::move(*_r);                          \
	})

#define BCK_CHECK(expr)                                  \
	do {                                             \
		auto _s = (expr);                        \
		if (!_s)                                 \
			return std::unexpected(std::move(_s.error())); \
	} while (0)
