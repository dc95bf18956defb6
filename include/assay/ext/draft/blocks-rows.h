/* Assay plugin ABI, DRAFT tier: middle blocks on chosen rows ("assay.model-blocks-rows.draft/1").
 *
 * DRAFT: unstable (see ext/draft/latent-space.h for what the tier means).
 *
 * Why: `assay_model_blocks_access_t.block` (ext/blocks.h) runs a block on every row of the
 * batch, so a caching sampler can only cache for the whole batch at once, as cache-dit and
 * TeaCache do. In a search batch the candidates are unrelated: one may be ready to reuse its
 * cache while its neighbour changes fast. With this extension a sampler runs a block on the
 * rows that need it and reuses cached residuals on the others, so every sample's cache
 * decision is its own and its result does not depend on the other samples in its batch.
 *
 * A host offers it through the model access's get_extension(ASSAY_EXT_MODEL_BLOCKS_ROWS_DRAFT)
 * whenever it offers ASSAY_EXT_MODEL_BLOCKS_ACCESS, for the same bound model; it is valid for
 * the same `advance` call. The host counts the FLOPs of the blocks actually run (from the
 * *_flops fields of ext/blocks.h) to report the compute a sampler saved; the NFE accounting of
 * ext/blocks.h is unchanged (the prologue is the evaluation). */
#pragma once

#include "../blocks.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ASSAY_EXT_MODEL_BLOCKS_ROWS_DRAFT "assay.model-blocks-rows.draft/1"

typedef struct assay_model_blocks_rows {
   void *host_data; /* host's; the plugin must not touch it */

   /* [call-thread] Middle block `index` on the `count` listed rows only, in place, in the
    * full-row buffers of the blocks access (hidden: rows * hidden_size floats, read and
    * written; context: rows * context_size floats, read; both caller-owned). `rows`
    * (borrowed) holds `count` distinct row indices below the access's `rows`, in any order;
    * unlisted rows are not read or written. A listed row's result equals what `block` on all
    * rows gives it, bit for bit. count 0 does nothing. Costs no NFE. */
   assay_result_t (*block_rows)(const struct assay_model_blocks_rows *model, uint32_t index,
                                uint32_t count, const uint32_t *rows, float *hidden,
                                const float *context);
} assay_model_blocks_rows_t;

#ifdef __cplusplus
}
#endif
