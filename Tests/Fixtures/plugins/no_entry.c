/* Test fixture: a shared object that exports a function but no `assay_entry`. The host
 * must list it as refused ("no assay_entry symbol") instead of crashing. Built without the
 * version script, which would name a symbol that does not exist here. */
#include <stdint.h>

__attribute__((visibility("default"))) int32_t not_an_assay_plugin(int32_t x) {
   return x + 1;
}
