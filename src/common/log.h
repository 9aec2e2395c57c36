// Diagnostics on stderr: -v details, and a progress line that redraws itself on a terminal only.
#pragma once

#include <cstdio>
#include <string>

#include <fmt/format.h>

namespace bpfckpt::log {

void set_verbosity(int v);
int verbosity();

template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args)
{
	if (verbosity() > 0)
		fmt::print(stderr, "bpfckpt: {}\n", fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args)
{
	fmt::print(stderr, "bpfckpt: warning: {}\n", fmt::format(f, std::forward<Args>(args)...));
}

// A progress line for long work: shown only on a terminal and only once the work has taken over a second.
class Progress {
public:
	explicit Progress(std::string what);
	~Progress();
	void update(uint64_t done, uint64_t total);

private:
	std::string what_;
	double start_;
	bool shown_ = false;
	bool tty_;
};

}  // namespace bpfckpt::log
