/* engine.h: C inference engine for the "shapes" rectified-flow model (tools/shapes/model.py
 * is the reference; its docstring specifies every op).
 *
 * All math in float32; every matmul and convolution goes through OpenBLAS (cblas_sgemm,
 * cblas_sgemv for one row), one sample at a time (see "Batch invariance" below).
 * A loaded engine is immutable: every function below may be called from many threads at
 * once on the same engine. Scratch memory comes from a small pool inside the engine (a
 * mutex guards only taking and returning a workspace), so there is no shared mutable state
 * during the math. Errors: functions return 0 or a negative SHAPES_E* code and, when `err`
 * is not NULL, write a one-line reason into err[errlen].
 *
 * Tensor layouts at this API (per sample, samples consecutive):
 *   latent x, velocity v : [C=in_channels][H=image_size][W=image_size]
 *   tokens               : int32 [max_tokens]
 *   condition            : [max_tokens * width] text-encoder output, then [width] its mean
 *   hidden (block state) : [tokens = max_tokens + n_img][width], text tokens first
 *   context (block state): engine-private layout of context_size floats (conditioning
 *                          vector and the encoder skips); produced by shapes_prologue.
 *
 * Corrector exports (metadata format "assay-shapes-corrector-v1", tools/corrector/
 * corrector_model.py: ReflectionFlow's corrector, the base model tuned to take a flawed
 * reference image and a reflection text) widen the condition and nothing else:
 *   reflection tokens    : int32 [ref_tokens] (their own vocabulary, metadata ref_vocab)
 *   condition            : [max_tokens * width] caption encoding,
 *                          [ref_tokens * width] reflection encoding (same text encoder blocks
 *                          and final norm, its own token and position embeddings),
 *                          [width] the mean of the CAPTION tokens only,
 *                          [cond_channels][image_size][image_size] the reference image in
 *                          [-1, 1] (all zeros = no reference)
 *   hidden (block state) : [text_tokens + n_img][width], text_tokens = max_tokens + ref_tokens
 *   the stem reads pixel_unshuffle(concat(x, reference)): (in_channels + cond_channels) *
 *   patch^2 input channels. For a base model ref_tokens = cond_channels = 0 and every layout
 *   above is the base one. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHAPES_OK 0
#define SHAPES_EINVAL (-1) /* bad argument (unknown word, too long caption, NULL buffer...) */
#define SHAPES_ENOMEM (-4)
#define SHAPES_EIO (-6)    /* weights file missing, corrupt, or not this model */

typedef struct shapes_config {
   /* From the file's "config" metadata (model.py DEFAULT_CONFIG names). */
   int image_size, in_channels, patch, ch0, ch1, width, heads, mlp_ratio, text_layers,
      mid_layers, cond_dim, time_freq_dim, groups, vocab_size, max_tokens;
   /* Derived. */
   int latent_size;    /* in_channels * image_size^2 floats per sample */
   int n_img;          /* image tokens in the middle stack */
   int n_seq;          /* text_tokens + n_img */
   int condition_size; /* text_tokens * width + width + cond_channels * image_size^2 */
   int hidden_size;    /* n_seq * width */
   int context_size;   /* cond_dim + ch0 * (image/patch)^2 + ch1 * (image/patch/2)^2 */
   /* Sampling defaults: metadata "default_steps" / "default_guidance" / "schedule_shift"
    * when the trainer wrote them, else 20 / 1.75 / 1. */
   int default_steps;
   float default_guidance, schedule_shift;
   long long train_steps; /* metadata "steps", -1 if absent */
   /* Corrector only (config keys cond_channels, ref_tokens, ref_vocab_size); 0 for a base
    * model. Kept last: tools/bench_engine.py mirrors the fields above with ctypes. */
   int cond_channels;  /* reference image channels (3: RGB) */
   int ref_tokens;     /* reflection tokens */
   int ref_vocab_size; /* reflection vocabulary (metadata ref_vocab) */
   int text_tokens;    /* max_tokens + ref_tokens: the text prefix of the middle stack */
   int is_corrector;   /* format "assay-shapes-corrector-v1" */
} shapes_config_t;

/* Multiply-adds per sample (for reporting FLOP savings of block caching). */
typedef struct shapes_cost {
   double prologue, block, epilogue; /* block = one middle block */
} shapes_cost_t;

typedef struct shapes_engine shapes_engine_t;

/* Loads and validates a weights file; NULL on failure with the reason in err. */
shapes_engine_t *shapes_engine_load(const char *path, char *err, size_t errlen);
void shapes_engine_free(shapes_engine_t *e);
const shapes_config_t *shapes_engine_config(const shapes_engine_t *e);
void shapes_engine_cost(const shapes_engine_t *e, shapes_cost_t *cost);
/* Metadata string of the weights file ("steps", "format", ...), or NULL. */
const char *shapes_engine_meta(const shapes_engine_t *e, const char *key);
/* Sets OpenBLAS's thread count (process-wide: OpenBLAS has one pool). */
void shapes_engine_set_threads(int threads);

/* world.py encode(): lower-case, split on whitespace, map through the file's vocabulary,
 * right-pad with 0 to max_tokens. Unknown word or too many words -> SHAPES_EINVAL.
 * ASCII whitespace and case only (locale-independent); Python's split() also splits on
 * Unicode spaces such as U+00A0, which here make the word unknown instead. */
int shapes_tokenize(const shapes_engine_t *e, const char *caption, int32_t *ids, char *err,
                    size_t errlen);
/* Text encoder for n token rows -> n conditions (condition_size floats each). On a
 * corrector: empty reflection and no reference image (zeros), = shapes_encode_cond with
 * ref_ids and ref_img NULL. */
int shapes_encode_text(const shapes_engine_t *e, uint32_t n, const int32_t *ids, float *cond,
                       char *err, size_t errlen);
/* Corrector: n conditions from caption ids [n * max_tokens], reflection ids
 * [n * ref_tokens] (NULL = empty reflections) and reference images
 * [n * cond_channels * image_size^2] floats (NULL = no reference, zeros; copied as given).
 * A base model takes only NULL ref_ids / ref_img (else SHAPES_EINVAL). Batch-invariant. */
int shapes_encode_cond(const shapes_engine_t *e, uint32_t n, const int32_t *ids, const int32_t *ref_ids,
                       const float *ref_img, float *cond, char *err, size_t errlen);
/* Corrector: the reflection tokenizer (data.py encode_reflection): ASCII lower-case, "." is a
 * token of its own, split on whitespace (ASCII, and 0x1c..0x1f like Python's str.split),
 * words outside metadata ref_vocab (and "<pad>") -> <unk>, right-pad with 0, truncate to
 * ref_tokens. Never fails on text: any instruction is fine. ids[ref_tokens]. SHAPES_EINVAL
 * on NULL arguments or a base model. */
int shapes_tokenize_reflection(const shapes_engine_t *e, const char *text, int32_t *ids, char *err,
                               size_t errlen);
/* Corrector: one condition from a caption (rules of shapes_tokenize: unknown words and too
 * long captions are errors), an instruction (shapes_tokenize_reflection: never an error) and
 * the reference image as 8-bit RGB, image_size x image_size pixels, rows `stride` bytes apart
 * (>= 3 * image_size), mapped to [-1, 1] as data.py to_float does: v / 127.5f - 1.0f (float32,
 * the same bits). rgb NULL = no reference (zeros). On a base model SHAPES_EINVAL. */
int shapes_encode_reference(const shapes_engine_t *e, const char *caption, const char *instruction,
                            const uint8_t *rgb, size_t stride, float *cond, char *err, size_t errlen);
/* Test tap: the text encoder's hidden state after the first `layers` text blocks (no final
 * LayerNorm), h[n * max_tokens * width]. */
int shapes_text_hidden(const shapes_engine_t *e, uint32_t n, const int32_t *ids, int layers, float *h,
                       char *err, size_t errlen);
/* tokenize + encode_text for one caption (corrector: empty reflection, no reference). */
int shapes_encode(const shapes_engine_t *e, const char *caption, float *cond, char *err,
                  size_t errlen);

/* Velocity of n samples: x[n*latent_size], t[n], cond[n*condition_size] -> v.
 *
 * Batch invariance (velocity, prologue, block, epilogue, encode_text): the result for sample
 * i is a function of its own inputs only, bit for bit: the same whatever n is, wherever the
 * sample sits in the batch and whatever the other samples are (a batch of 16 and the sample
 * alone give identical bits). Every product is issued per sample with a shape fixed by the
 * layer, so OpenBLAS takes the same kernels and blocking for it in every batch. The bits are
 * deterministic run to run; they may differ between CPUs, OpenBLAS builds and OpenBLAS
 * thread counts (shapes_engine_set_threads), each fixed for a process. */
int shapes_velocity(const shapes_engine_t *e, uint32_t n, const float *x, const float *t,
                    const float *cond, float *v, char *err, size_t errlen);

/* Block-level access (the same code path velocity uses, so prologue + every block in order
 * + epilogue == velocity bit for bit).
 *   prologue: everything up to the sequence entering middle block 0 -> hidden, context.
 *   block i : hidden <- mid block i (hidden), in place; reads context.
 *   epilogue: img_out + residual + decoder -> v. `mid_out` (optional, n*ch1*(image/4)^2)
 *             receives the decoder input (test tap). */
int shapes_prologue(const shapes_engine_t *e, uint32_t n, const float *x, const float *t,
                    const float *cond, float *hidden, float *context, char *err, size_t errlen);
int shapes_block(const shapes_engine_t *e, uint32_t index, uint32_t n, float *hidden,
                 const float *context, char *err, size_t errlen);
int shapes_epilogue(const shapes_engine_t *e, uint32_t n, const float *hidden,
                    const float *context, float *v, float *mid_out, char *err, size_t errlen);

/* Context accessors (test taps) for sample i of a context buffer: cs [cond_dim] (a pointer
 * into the buffer) and a copy of the enc1 output s2 as [ch1][h2][w2] into chw. */
const float *shapes_context_cs(const shapes_engine_t *e, const float *context, uint32_t i);
void shapes_context_enc1(const shapes_engine_t *e, const float *context, uint32_t i, float *chw);

#ifdef __cplusplus
}
#endif
