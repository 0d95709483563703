// Built by tests/layering/check_layering.py, which expects it NOT to
// compile: ledger/sqlite.h is INTERNAL to the ledger (CMakeLists.txt), so a
// module that links the ledger sees ledger/ledger.h but not the SQLite
// details behind it.
#include "ledger/ledger.h"
#include "ledger/sqlite.h"

int LayeringProbeInternal() {
  return 0;
}
