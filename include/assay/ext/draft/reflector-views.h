/* Assay plugin ABI, DRAFT tier: reflection on several views of one lineage
 * ("assay.reflector-views.draft/1").
 *
 * DRAFT: unstable (see ext/draft/latent-space.h for what the tier means).
 *
 * Why: `assay.reflector/1` sees one image per candidate. SF2's visual reflection (Eq. 13)
 * shows the reflector two images of ONE trajectory: the layout preview decoded from the
 * early x0-prediction x̂ = x_{t_k} - t_k v(x_{t_k}) and the cheap sketch finished from the
 * same x_{t_k}. What is wrong in both is what the trajectory will keep, so that is what the
 * negative prompt should name. A plugin that has this extension also has assay.reflector/1;
 * the host fetches it with get_extension(ASSAY_EXT_REFLECTOR_VIEWS_DRAFT).
 *
 * Output and metering are those of assay.reflector/1's `reflect`: one JSON object per
 * candidate on `out` ({"feedback": ..., "negative_prompt": ..., "revised_prompt": ...}),
 * and reflecting on n candidates counts as n reflector calls, whatever the number of views. */
#pragma once

#include "../../plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ASSAY_EXT_REFLECTOR_VIEWS_DRAFT "assay.reflector-views.draft/1"

/* View names a host sends (a plugin should ignore views it does not know):
 *   "preview": the decoded early x0-prediction of the trajectory (blurry, layout only)
 *   "sketch":  the trajectory finished cheaply by a fast path (a draft model or sampler)
 *   "final":   the trajectory finished by the base model */
#define ASSAY_VIEW_PREVIEW "preview"
#define ASSAY_VIEW_SKETCH "sketch"
#define ASSAY_VIEW_FINAL "final"

typedef struct assay_reflector_views_ext {
   /* [job-thread] Like assay.reflector/1's reflect, for n candidates seen through `views`
    * images each. All inputs borrowed: `view_names` holds `views` names (above);
    * `images` holds n * views images, candidate-major (candidate i's view j is
    * images[i * views + j]); `details` and `history` are as in reflect (per candidate; the
    * details are of the candidate's last view). Writes one JSON object per candidate. */
   assay_result_t (*reflect_views)(const assay_plugin_t *plugin, const assay_call_t *call,
                                   const char *prompt, uint32_t n, uint32_t views,
                                   const char *const *view_names, const assay_image_t *images,
                                   const char *const *details, const char *const *history,
                                   const assay_text_out_t *out);
} assay_reflector_views_ext_t;

#ifdef __cplusplus
}
#endif
