/* Assay plugin ABI: the model interface ("assay.model/1"), a flow-matching denoiser. */
#pragma once

#include "../plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ASSAY_EXT_MODEL "assay.model/1"

/* Flow convention (fixed for Assay 1): x_t = (1 - t) * x_0 + t * noise, t in [0, 1], t = 1
 * is pure Gaussian noise, t = 0 is data. The model predicts the velocity v = noise - x_0,
 * so dx/dt = v and an Euler step from t to t' < t is x += (t' - t) * v.
 * The host builds the schedule: t_i = shift(1 - i / steps), i = 0..steps, with
 * shift(u) = s * u / (1 + (s - 1) * u) and s = schedule_shift (s = 1: uniform steps).
 * Guidance (done by the host): v = v_neg + g * (v_pos - v_neg), where v_neg is the velocity
 * under the negative prompt, or under the unconditional prompt "" when there is none. */

typedef struct assay_model_info {
   uint32_t latent_channels;  /* C of one latent sample */
   uint32_t latent_height;    /* H */
   uint32_t latent_width;     /* W */
   uint32_t image_width;      /* pixels of a decoded image */
   uint32_t image_height;
   uint32_t condition_size;   /* floats in one encoded condition */
   uint32_t max_batch;        /* most samples one `velocity` call accepts; 0 = no limit */
   uint32_t default_steps;    /* a good number of Euler steps for this model */
   float default_guidance;    /* a good guidance scale; 1 means no guidance */
   float schedule_shift;      /* s above; 1 for a uniform schedule */
} assay_model_info_t;

typedef struct assay_model_ext {
   /* [any-thread] Fills `info` (caller-owned). Valid after a successful init; constant for
    * the instance's life. */
   void (*get_info)(const assay_plugin_t *plugin, assay_model_info_t *info);

   /* [job-thread] Encodes `text` (borrowed UTF-8; "" = unconditional) into `condition`
    * (caller-owned, condition_size floats). A model that cannot represent some text (an
    * unknown word, too long) returns ASSAY_ERR_INVALID_ARGUMENT with a reason naming the
    * problem; a model may also accept any text. The host calls it when a job is submitted,
    * so the reason reaches the client as a D-Bus error at once. Costs no NFE. */
   assay_result_t (*encode)(const assay_plugin_t *plugin, const assay_call_t *call,
                            const char *text, float *condition);

   /* [job-thread] Velocity of n samples: sample i is x + i*sample_size at time t[i] under
    * condition conditions + i*condition_size. All buffers caller-owned: x and t and
    * conditions are read, v (n*sample_size floats) is written. Costs n NFEs, which the
    * host counts before it calls. n <= max_batch when max_batch > 0.
    * Determinism (required): the same inputs give bit-identical outputs (replays depend
    * on it), and the outputs are batch-invariant: those of sample i depend only on x_i,
    * t[i] and condition_i, bit for bit, never on n, on the sample's position in the batch
    * or on the other samples (sample i alone and sample i as row 5 of 16 give the same
    * bits). The host relies on it to batch freely (guided [positive rows; negative rows]
    * as one call of 2n, chunks of max_batch, rows of different nodes) and to replay one
    * node of a search tree alone. Bits may differ between machines. */
   assay_result_t (*velocity)(const assay_plugin_t *plugin, const assay_call_t *call,
                              uint32_t n, const float *x, const float *t,
                              const float *conditions, float *v);

   /* [job-thread] Decodes n clean latents (x, caller-owned) into n RGB images written to
    * `rgb` (caller-owned, n * image_height * image_width * 3 bytes, stride width*3).
    * Costs no NFE. */
   assay_result_t (*decode)(const assay_plugin_t *plugin, const assay_call_t *call,
                            uint32_t n, const float *x, uint8_t *rgb);
} assay_model_ext_t;

#ifdef __cplusplus
}
#endif
