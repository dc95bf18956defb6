/* Assay plugin ABI, DRAFT tier: the latent-space declaration ("assay.latent-space.draft/1").
 *
 * DRAFT: unstable. Anything under ext/draft/ may change or vanish in any minor version;
 * it is not covered by the freeze rule of version.h. An extension leaves the draft tier
 * (and gets a frozen id without ".draft") once a real plugin and the host have both used
 * it for a release. Ids of draft extensions always contain ".draft/".
 *
 * Why: a search may hand a latent from one model to another (Co-Fusion: the base model
 * denoises the first steps, a distilled student finishes). That is only meaningful when
 * both models read and write the same latent space: same shape AND the same meaning of
 * every number (same autoencoder, same normalisation). The shape alone cannot tell; the
 * host allows a hand-over only between models that declare the same latent-space id.
 * A model without this extension shares its latent space with no other model. */
#pragma once

#include "../../plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ASSAY_EXT_LATENT_SPACE_DRAFT "assay.latent-space.draft/1"

typedef struct assay_latent_space_ext {
   /* [any-thread] The latent space's id: a NUL-terminated string of 1-128 chars of
    * [a-z0-9._/-], owned by the plugin and constant for the instance's life (valid after
    * a successful init). Convention: "<vendor or project>/<space>/<version>", e.g.
    * "io.assay.shapes/rgb-1x32x32/1". Two models with equal ids promise that a latent
    * written by one is a valid state for the other at the same t, and that both decode
    * it to the same image. Never NULL. */
   const char *(*id)(const assay_plugin_t *plugin);
} assay_latent_space_ext_t;

#ifdef __cplusplus
}
#endif
