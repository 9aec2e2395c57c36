#include "common/result.h"

namespace bpfckpt {

ExitCode exit_for_errno(int err)
{
	switch (err) {
	case EPERM:
	case EACCES:
		return ExitCode::permission;
	case ESRCH:
		return ExitCode::no_target;
	case ENOSPC:
	case EDQUOT:
	case EIO:
	case EROFS:
	case EEXIST:
	case ENOTEMPTY:
		return ExitCode::io;
	case ENOSYS:
	case EOPNOTSUPP:
		return ExitCode::kernel;
	default:
		return ExitCode::failure;
	}
}

}  // namespace bpfckpt
