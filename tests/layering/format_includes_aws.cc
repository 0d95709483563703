// Built by tests/layering/check_layering.py, which expects it NOT to
// compile: the store links the AWS client PRIVATEly, so a module above the
// store (format) cannot reach AWS headers through it.
#include "aws/client.h"

int LayeringProbePrivate() {
  return 0;
}
