/* Assay plugin ABI: the reflector interface ("assay.reflector/1"). */
#pragma once

#include "../plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ASSAY_EXT_REFLECTOR "assay.reflector/1"

typedef struct assay_reflector_ext {
   /* [job-thread] Looks at n images generated for `prompt` (borrowed) and says what is
    * wrong with each. Inputs, all borrowed: `details` is NULL or n verifier-details JSON
    * texts (entries may be NULL; their form is each verifier's own, so do not depend on
    * it); `history` is NULL or n JSON arrays of this image lineage's earlier reflections,
    * oldest first, each element an object this interface returned before (the host adds
    * nothing to them). For every image the plugin sets one JSON
    * object on `out`:
    *   {"feedback": "Add one more red circle.",      (required: imperative edits)
    *    "negative_prompt": "a blue circle",           (optional)
    *    "revised_prompt": "a red circle left of ..."} (optional)
    * Reflecting on n images counts as n reflector calls against the job's budget. */
   assay_result_t (*reflect)(const assay_plugin_t *plugin, const assay_call_t *call,
                             const char *prompt, uint32_t n, const assay_image_t *images,
                             const char *const *details, const char *const *history,
                             const assay_text_out_t *out);
} assay_reflector_ext_t;

#ifdef __cplusplus
}
#endif
