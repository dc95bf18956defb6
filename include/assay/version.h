/* Assay plugin ABI: version and compatibility rule. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version a plugin was compiled against, and the one the host speaks.
 *
 * Compatibility rule: host and plugin are compatible iff their `major` fields are equal.
 * - `major` changes only when a frozen struct or a function signature changes; then every
 *   plugin must be rebuilt, and the host refuses old ones with a reason.
 * - `minor` grows when something is added that old plugins need not know about (a new
 *   extension id, a new error code, a new option key). A plugin built against a newer minor
 *   than the host must query extensions and cope with NULL.
 * - `revision` is documentation-only fixes.
 * Structs in this header set are FROZEN within a major version: nothing is ever appended to
 * them. Growth happens through versioned extension ids ("assay.model/1", "assay.model/2").
 * Enums are uint32_t values where 0 means "unknown".
 * The draft tier is outside this rule: extensions under ext/draft/ (ids with ".draft/")
 * are unstable, may change in any minor version, and are included one by one (never by
 * assay.h). One leaves the tier, with a frozen id, after a real plugin and the host have
 * both used it for a release (ext/draft/latent-space.h: shapes and shapes-turbo declare
 * it, the host's model hand-over checks it).
 *
 * History: 1.0 the entry, factory, host, model, sampler, verifier and reflector
 * interfaces; 1.1 adds the optional extensions "assay.model-blocks/1" (ext/blocks.h)
 * and "assay.prompt-check/1" (ext/prompt-check.h). */
typedef struct assay_version {
   uint32_t major;
   uint32_t minor;
   uint32_t revision;
} assay_version_t;

#define ASSAY_VERSION_MAJOR 1
#define ASSAY_VERSION_MINOR 1
#define ASSAY_VERSION_REVISION 0

#define ASSAY_VERSION_INIT {ASSAY_VERSION_MAJOR, ASSAY_VERSION_MINOR, ASSAY_VERSION_REVISION}

/* True when something built against `v` can be used by code built against this header. */
static inline bool assay_version_is_compatible(assay_version_t v) {
   return v.major == ASSAY_VERSION_MAJOR;
}

#ifdef __cplusplus
}
#endif
