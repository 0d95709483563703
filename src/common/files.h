// Local filesystem helpers shared by the file:// store, the CLI and the
// warehouses.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "common/status.h"

namespace logferry {

// An errno as a Status: missing → kNotFound; refused → kPermissionDenied;
// interrupted or I/O → kUnavailable; out of descriptors, disk, quota or
// memory → kResourceExhausted (retrying at once fails the same way);
// anything else kInternal. The message is "what: strerror(err)".
Status ErrnoStatus(int err, const std::string& what);

// mkdir -p: creates dir and its missing parents. Parents get 0755 and dir
// itself `mode` (the umask applies); directories that exist are left as
// they are, whatever their mode.
Status MakeDirectories(std::string_view dir, mode_t mode = 0755);

}  // namespace logferry
