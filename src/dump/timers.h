// POSIX timers (timer_create) from the task iterator's bck_posix_timer records, as timer_gettime() would have
// described them at the dump.
#pragma once

#include <vector>

#include "common/result.h"
#include "dump/collector.h"
#include "image/model.h"

namespace bpfckpt::dump {

// Refuses timers restore cannot re-create: more than the iterator reports, alarm clocks, thread and foreign CPU
// clocks, a notification kind the kernel does not use.
Status check_posix_timers(const RawTask& leader);

// The leader's timers with the time left until their next expiry.
std::vector<image::PosixTimer> build_posix_timers(const RawTask& leader);

}  // namespace bpfckpt::dump
