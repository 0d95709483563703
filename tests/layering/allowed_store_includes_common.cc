// Built by tests/layering/check_layering.py: the store may include what it
// links (common), so this compiles.
#include "common/status.h"
#include "store/object_store.h"

int LayeringProbeAllowed() {
  return logferry::Status::Ok().ok() ? 0 : 1;
}
