// Monotonic seconds, for the timings --stats reports; nanoseconds on a given clock, for saved timers.
#pragma once

#include <time.h>

#include <chrono>
#include <cstdint>

namespace bpfckpt {

inline double now_s()
{
	return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// 0 when the clock cannot be read (a CPU clock of a process that is gone).
inline int64_t clock_now_ns(clockid_t clock)
{
	timespec ts{};
	if (clock_gettime(clock, &ts) != 0)
		return 0;
	return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace bpfckpt
