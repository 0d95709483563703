#include "common/version.h"

// CMakeLists.txt defines both for this file alone, so a new commit
// recompiles one file.
#ifndef LOGFERRY_VERSION
#error "LOGFERRY_VERSION must come from CMake"
#endif
#ifndef LOGFERRY_GIT_DESCRIBE
#define LOGFERRY_GIT_DESCRIBE ""
#endif

namespace logferry {

const char* LogferryVersion() {
  return LOGFERRY_VERSION;
}

const char* LogferryGitDescribe() {
  return LOGFERRY_GIT_DESCRIBE;
}

}  // namespace logferry
