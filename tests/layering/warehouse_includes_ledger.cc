// Built by tests/layering/check_layering.py, which expects it NOT to
// compile: warehouses know nothing of the ledger (the core hands them what a
// load needs, warehouse/warehouse.h), so the ledger's headers are not on
// their include path.
#include "ledger/ledger.h"

int LayeringProbeWarehouse() {
  return 0;
}
