/* Assay plugin ABI: the verifier interface ("assay.verifier/1"). */
#pragma once

#include "../plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ASSAY_EXT_VERIFIER "assay.verifier/1"

typedef struct assay_verifier_ext {
   /* [job-thread] Scores n images against `prompt` (borrowed). Writes n finite scores to
    * `scores` (caller-owned), higher is better; scales differ between verifiers, so the
    * host compares verifiers by rank, never by raw score. If `details` is not NULL the
    * plugin may set one JSON object per image explaining its score (e.g. which constraint
    * failed). Scoring n images counts as n verifier calls against the job's budget; the
    * host counts them before it calls. Must be deterministic. */
   assay_result_t (*score)(const assay_plugin_t *plugin, const assay_call_t *call,
                           const char *prompt, uint32_t n, const assay_image_t *images,
                           double *scores, const assay_text_out_t *details);
} assay_verifier_ext_t;

#ifdef __cplusplus
}
#endif
