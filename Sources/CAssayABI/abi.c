/* The ABI is header-only; this file exists because a C target needs one source.
 * It also proves the header compiles as part of the host's build. */
#include "../../include/assay/assay.h"

const assay_version_t assay_host_abi_version = ASSAY_VERSION_INIT;

