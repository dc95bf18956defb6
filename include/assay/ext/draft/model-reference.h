/* Assay plugin ABI, DRAFT tier: conditioning a model on a reference image and an instruction
 * ("assay.model-reference.draft/1").
 *
 * DRAFT: unstable (see ext/draft/latent-space.h for what the tier means).
 *
 * Why: ReflectionFlow's corrector is a generator tuned to take (flawed image, reflection)
 * and produce the corrected image. To the host it is an ordinary `assay.model/1` model whose
 * condition also carries the flawed image and the reflection's text: this extension encodes
 * that condition, and everything else (velocity, guidance, batching, NFE accounting,
 * samplers, block caching) stays the model interface's. A plugin that has this extension
 * also has assay.model/1; the host fetches it with get_extension(ASSAY_EXT_MODEL_REFERENCE_DRAFT).
 *
 * Guidance: for a guided row the host evaluates the positive condition
 * encode_reference(prompt, instruction, image) and the negative condition
 * encode_reference(negative_prompt or "", "", image): both branches see the SAME reference
 * image, so guidance pushes towards the texts and never away from the image (the
 * InstructPix2Pix text guidance the shapes corrector was trained for). */
#pragma once

#include "../../plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ASSAY_EXT_MODEL_REFERENCE_DRAFT "assay.model-reference.draft/1"

typedef struct assay_model_reference_info {
   uint32_t image_width;      /* the reference image size the model takes, in pixels; the */
   uint32_t image_height;     /* host passes images of exactly this size */
   uint32_t max_instruction_words; /* the model reads at most this many tokens of the
                                    * instruction, counted its own way (shapes-corrector:
                                    * a word or a "." each); the rest is ignored, never an
                                    * error. For a host that wants to warn, not to split. */
} assay_model_reference_info_t;

typedef struct assay_model_reference_ext {
   /* [any-thread] Fills `info` (caller-owned). Valid after a successful init; constant for
    * the instance's life. */
   void (*get_info)(const assay_plugin_t *plugin, assay_model_reference_info_t *info);

   /* [job-thread] Encodes the prompt `text`, the `instruction` (what to change, e.g. a
    * reflector's feedback; "" = none) and the reference `image` (8-bit RGB, the size of
    * get_info) into `condition` (caller-owned, condition_size floats of assay.model/1),
    * which `velocity` then takes like any other condition. All inputs borrowed for the
    * call. The instruction is free text from another plugin: words the model does not know
    * must not be an error (ignore them or map them to an unknown token). The prompt follows
    * the rules of assay.model/1's `encode`. Deterministic (same inputs, same bits). Costs
    * no NFE. */
   assay_result_t (*encode_reference)(const assay_plugin_t *plugin, const assay_call_t *call,
                                      const char *text, const char *instruction,
                                      const assay_image_t *image, float *condition);
} assay_model_reference_ext_t;

#ifdef __cplusplus
}
#endif
