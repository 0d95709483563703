// Built by tests/layering/check_layering.py, which expects it NOT to
// compile: the store sits below the core, so the core's headers are not on
// its include path.
#include "core/pipeline.h"

int LayeringProbeUpward() {
  return 0;
}
