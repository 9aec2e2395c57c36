#include "common/log.h"
#include "common/clock.h"

#include <time.h>
#include <unistd.h>

namespace bpfckpt::log {

static int g_verbosity = 0;

void set_verbosity(int v) { g_verbosity = v; }
int verbosity() { return g_verbosity; }


Progress::Progress(std::string what) : what_(std::move(what)), start_(now_s()), tty_(isatty(STDERR_FILENO)) {}

Progress::~Progress()
{
	if (shown_)
		fmt::print(stderr, "\r\033[K");
}

void Progress::update(uint64_t done, uint64_t total)
{
	if (!tty_ || now_s() - start_ < 1.0)
		return;
	shown_ = true;
	fmt::print(stderr, "\r\033[K{}: {} / {} MiB ({}%)", what_, done >> 20, total >> 20, total ? done * 100 / total : 100);
}

}  // namespace bpfckpt::log
