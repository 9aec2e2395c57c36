// Monotonic seconds, for the timings --stats reports.
#pragma once

#include <chrono>

namespace bpfckpt {

inline double now_s()
{
	return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace bpfckpt
