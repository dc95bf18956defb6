/* Assay plugin ABI: the fast-sampler interface ("assay.sampler/1"). */
#pragma once

#include "../plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ASSAY_EXT_SAMPLER "assay.sampler/1"

/* A model as a sampler sees it. The host binds the model instance, the conditions, the
 * guidance and the job's budget: a sampler never reaches the model directly, so every
 * evaluation it makes is counted and can be refused. Owned by the host; borrowed for the
 * duration of one `advance` call. */
typedef struct assay_model_access {
   void *host_data;             /* host's; the plugin must not touch it */
   uint32_t batch;              /* samples in every x passed to `evaluate` */
   uint32_t channels;           /* latent shape of one sample */
   uint32_t height;
   uint32_t width;
   uint32_t nfe_per_evaluation; /* NFEs one `evaluate` costs: batch x conditions */

   /* [call-thread] Guided velocity of all `batch` samples at time t: reads x, writes v
    * (both caller-owned, batch * channels * height * width floats). One t for the whole
    * batch on purpose: a sampler moves its batch in lockstep, and the host turns this into
    * one batched model call. Returns ASSAY_ERR_BUDGET when the host refuses because the
    * job's budget would be exceeded, ASSAY_ERR_CANCELLED when the job is cancelled or past
    * its deadline: then stop and return that same code WITHOUT calling report_error (the
    * host already knows why; a report would replace its reason). */
   assay_result_t (*evaluate)(const struct assay_model_access *model, const float *x,
                              float t, float *v);

   /* [call-thread] Optional model-side extensions the host forwards (block-level access
    * for caching samplers, a later minor version), or NULL. Owned by the host. */
   const void *(*get_extension)(const struct assay_model_access *model, const char *id);
} assay_model_access_t;

typedef struct assay_sampler_ext {
   /* [job-thread] Integrates x (batch samples; read and written in place, caller-owned)
    * from time t_from down to t_to < t_from, calling model->evaluate as it needs.
    * The host may call it once for the whole path (1 -> 0) or once per segment (e.g. a
    * Co-Fusion sketch from t_k to 0); a sampler must work either way and choose its own
    * times inside [t_to, t_from] (it does not see the model's schedule_shift).
    * `options` (borrowed) holds at least "steps" (number: the job's step count for the
    * whole 1 -> 0 path; a sampler scales it by t_from - t_to) plus the job's
    * sampler_options. On any error x is left in an unspecified state. */
   assay_result_t (*advance)(const assay_plugin_t *plugin, const assay_call_t *call,
                             const assay_model_access_t *model, float *x, float t_from,
                             float t_to, const assay_options_t *options);
} assay_sampler_ext_t;

#ifdef __cplusplus
}
#endif
