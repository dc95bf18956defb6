/* Assay plugin ABI: block-level model access ("assay.model-blocks/1") for caching samplers.
 *
 * A model whose denoiser is "prologue -> a stack of middle blocks -> epilogue" (a DiT/MMDiT
 * transformer stack, or a U-Net with a transformer middle) may expose the three parts, so a
 * sampler can skip middle blocks and reuse cached residuals (DBCache, TeaCache, FORA...).
 * One evaluation of n samples is:
 *     prologue(x, t, conditions) -> hidden, context
 *     block(0, hidden, context), block(1, ...), ..., block(block_count - 1, ...)
 *     epilogue(hidden, context) -> v
 * Run that way, with every block in order, the result MUST equal the model's `velocity`
 * (ext/model.h) for the same n samples bit for bit. A caching sampler replaces some block
 * calls by its own update of `hidden` (e.g. hidden += cached residual).
 *
 * NFE accounting (see common.h): the prologue is the commitment to one evaluation. A host
 * that forwards this extension counts n NFEs when it forwards `prologue` for n samples (and
 * refuses it with ASSAY_ERR_BUDGET when the job's budget would be exceeded); `block` and
 * `epilogue` cost no further NFE. So a full evaluation (prologue + all blocks + epilogue)
 * costs 1 NFE per sample, exactly like `velocity`, and a CACHED evaluation that skips some
 * blocks STILL costs 1 NFE per sample: Assay budgets count evaluations, not FLOPs. The
 * compute saved is reported separately as a FLOP ratio from the *_flops fields below:
 *     saved = skipped_blocks * block_flops / (prologue + block_count * block + epilogue).
 *
 * State buffers are plain float32 arrays owned by the caller, per sample consecutive:
 *   hidden : hidden_size floats per sample = tokens x width, row-major (token-major). It is
 *            the sequence between blocks; residuals (hidden after - hidden before) and
 *            relative L1 distances on it are meaningful.
 *   context: context_size floats per sample, opaque (conditioning vectors, encoder skips).
 *            Written by prologue, only read by block and epilogue; a sampler may copy or
 *            keep it but must not interpret or modify it.
 * A sample's state may be moved between batch positions: every function treats samples
 * independently. */
#pragma once

#include "../plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ASSAY_EXT_MODEL_BLOCKS "assay.model-blocks/1"

/* Shapes and costs of the parts; constant for the instance's life. FROZEN. */
typedef struct assay_model_blocks_info {
   uint32_t block_count;  /* middle blocks, indices 0 .. block_count - 1, run in order */
   uint32_t hidden_size;  /* floats of one sample's hidden state (= tokens * width) */
   uint32_t context_size; /* floats of one sample's context */
   uint32_t tokens;       /* rows of the hidden state (e.g. text tokens + image tokens) */
   uint32_t width;        /* floats per token */
   uint32_t reserved;     /* 0 */
   double prologue_flops; /* approximate floating-point operations per sample, prologue */
   double block_flops;    /* one middle block, per sample (all blocks cost the same) */
   double epilogue_flops; /* epilogue, per sample */
} assay_model_blocks_info_t;

/* The plugin side: implemented by a model plugin, returned by its get_extension. FROZEN. */
typedef struct assay_model_blocks_ext {
   /* [any-thread] Fills `info` (caller-owned). Valid after a successful init. */
   void (*get_info)(const assay_plugin_t *plugin, assay_model_blocks_info_t *info);

   /* [job-thread] Everything before middle block 0 for n samples: x (n latents), t (n
    * times) and conditions (n * condition_size floats from the model's encode) are read;
    * hidden (n * hidden_size) and context (n * context_size) are written. All caller-owned.
    * Costs n NFEs (counted by the host before it calls). n <= max_batch when max_batch > 0. */
   assay_result_t (*prologue)(const assay_plugin_t *plugin, const assay_call_t *call,
                              uint32_t n, const float *x, const float *t,
                              const float *conditions, float *hidden, float *context);

   /* [job-thread] Middle block `index` on n samples, in place: hidden (n * hidden_size,
    * caller-owned) is read and overwritten; context (n * context_size, caller-owned, from
    * prologue) is read. Costs no NFE. */
   assay_result_t (*block)(const assay_plugin_t *plugin, const assay_call_t *call,
                           uint32_t index, uint32_t n, float *hidden, const float *context);

   /* [job-thread] Everything after the last middle block: reads hidden and context (both
    * caller-owned), writes the n velocities to v (caller-owned, n latent samples). Costs
    * no NFE. Deterministic like velocity. */
   assay_result_t (*epilogue)(const assay_plugin_t *plugin, const assay_call_t *call,
                              uint32_t n, const float *hidden, const float *context,
                              float *v);
} assay_model_blocks_ext_t;

/* The sampler side: what a host offers a sampler through assay_model_access_t's
 * get_extension(ASSAY_EXT_MODEL_BLOCKS_ACCESS), when the bound model has the extension
 * above. The host binds the conditions, the guidance and the budget as for `evaluate`:
 * each state buffer holds `rows` = batch x conditions samples (row r: condition r / batch,
 * sample r % batch; conditions = nfe_per_evaluation / batch, 2 with guidance). Owned by the
 * host, borrowed for the duration of one `advance` call. FROZEN. */
#define ASSAY_EXT_MODEL_BLOCKS_ACCESS "assay.model-blocks-access/1"

typedef struct assay_model_blocks_access {
   void *host_data;           /* host's; the plugin must not touch it */
   assay_model_blocks_info_t info; /* of the bound model; sizes are per row */
   uint32_t rows;             /* samples in every hidden/context buffer */
   uint32_t reserved;         /* 0 */

   /* [call-thread] Prologue of all rows at time t from the batch latents x (batch samples,
    * caller-owned): writes hidden (rows * hidden_size) and context (rows * context_size),
    * caller-owned. Costs nfe_per_evaluation NFEs, like `evaluate`: returns ASSAY_ERR_BUDGET
    * when refused, ASSAY_ERR_CANCELLED when the job is cancelled; then stop and return it. */
   assay_result_t (*prologue)(const struct assay_model_blocks_access *model, const float *x,
                              float t, float *hidden, float *context);

   /* [call-thread] Middle block `index` on all rows, in place. Costs no NFE. */
   assay_result_t (*block)(const struct assay_model_blocks_access *model, uint32_t index,
                           float *hidden, const float *context);

   /* [call-thread] Epilogue of all rows, then guidance: writes the guided velocity of the
    * batch samples to v (caller-owned, batch latent samples). Costs no NFE. */
   assay_result_t (*epilogue)(const struct assay_model_blocks_access *model,
                              const float *hidden, const float *context, float *v);
} assay_model_blocks_access_t;

#ifdef __cplusplus
}
#endif
