/* clipscore.h: the shapes-clipscore model (a small CLIP-style image/text encoder pair trained by
 * tools/clipscore/train.py) in plain C: loading + validating its safetensors file, the
 * tokenizer (tools/shapes/world.py `encode`), and the two forward passes.
 *
 * The forward pass (train.py's docstring is the reference):
 *   image  uint8 32x32 RGB -> x = p/127.5 - 1 (CHW) + coordinate planes X, Y
 *          ((i + 0.5)/16 - 1)  -> conv3x3 s1 + ReLU -> conv3x3 s2 + ReLU -> conv3x3 s2 + ReLU
 *          -> mean over positions -> linear + ReLU -> linear -> L2-normalise
 *   text   8 token ids -> concat of one embedding row per position (table p for position p)
 *          -> linear + ReLU -> linear -> L2-normalise
 *   cosine = <image, text>.
 * Channel counts, hidden and embedding sizes are read from the tensor shapes (checked for
 * consistency); strides, kernel size, image size and the number of token positions are fixed.
 *
 * Threads: a cs_model is read-only after cs_model_load; every function taking a const
 * cs_model * may run concurrently. Scratch memory is allocated per call.
 * Depends on Plugins/shapes/engine/{safetensors,json}.c (compiled in). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define CS_IMAGE_SIZE 32
#define CS_MAX_TOKENS 8
#define CS_MAX_VOCAB 256
#define CS_MAX_WORD 32

typedef struct cs_model cs_model;

/* Loads and validates a clipscore safetensors file (header length vs file size, JSON, dtypes,
 * shapes, byte ranges, metadata "format"/"vocab"/"architecture"). NULL + `err` on failure. */
cs_model *cs_model_load(const char *path, char *err, size_t errlen);
/* Same, from bytes in memory (copied); `label` names it in messages. */
cs_model *cs_model_load_memory(const uint8_t *bytes, size_t size, const char *label, char *err,
                               size_t errlen);
void cs_model_free(cs_model *m);

int cs_embed_dim(const cs_model *m);
/* Number of vocabulary entries (token ids are 0..count-1, 0 = <pad>). */
int cs_vocab_size(const cs_model *m);
/* The "logit_scale" metadata (CLIP's 1/temperature), 0 if absent. */
double cs_logit_scale(const cs_model *m);
const char *cs_meta(const cs_model *m, const char *key);

/* world.py `encode`: lower-case (ASCII), split on runs of whitespace, map each word to its id in
 * the model's vocabulary, right-pad with 0 to CS_MAX_TOKENS. Returns 0, or -1 with `err` naming
 * the unknown word / the word count. */
int cs_tokenize(const cs_model *m, const char *caption, int32_t tokens[CS_MAX_TOKENS], char *err,
                size_t errlen);

/* Embeddings (L2-normalised, cs_embed_dim floats). Return 0, or -1 when out of memory. */
int cs_embed_image(const cs_model *m, const uint8_t *pixels, uint32_t stride, float *out);
int cs_embed_text(const cs_model *m, const int32_t tokens[CS_MAX_TOKENS], float *out);

/* Dot product of two cs_embed_dim vectors. */
float cs_cosine(const cs_model *m, const float *a, const float *b);
