// The version of logferry: CMake's project() version, and `git describe` of
// the tree it was configured from, when that was a git checkout.
#pragma once

namespace logferry {

// "0.1.0".
const char* LogferryVersion();
// "v0.1.0-12-gabc1234-dirty", or "" when not built from git.
const char* LogferryGitDescribe();

}  // namespace logferry
