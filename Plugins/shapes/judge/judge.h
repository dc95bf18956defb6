/* judge.h: the shapes judge, a learned detector for the shapes world and the GenEval rules
 * on its detections (the C twin of tools/judge/judge.py; model card tools/judge/README.md).
 *
 * Detection is a small CenterNet-style CNN (weights shapes-judge.safetensors, trained by
 * tools/judge/train.py); nothing of the checker's pixel classification, components or
 * template fits is used, so the judge's mistakes are not the checker's. Only the benchmark's
 * rules are shared: the caption grammar (world/parse.c, sw_parse) and GenEval's counting and
 * position rule (world/relations.c `sw_relations`, world.py `relative_position`).
 *
 * Decoding (exactly judge.py's):
 *   - an image that is not 32x32 is resampled to 32x32 by nearest neighbour (source pixel
 *     floor((2d + 1) * size / 64) for destination d); boxes are reported in its own pixels,
 *     relations are decided on the 32x32 frame;
 *   - input byte / 255 (float), output 15 maps on a 16x16 grid: 12 class logits
 *     (colour * 3 + shape), centre offset x, y within the cell, box side / 8;
 *   - a cell is a detection when its best class logit m (first on ties) is above
 *     logit(threshold) and a 3x3 local maximum (strictly above the neighbours before it in
 *     raster order, at least equal to those after it);
 *   - centre = 2 * (cell + offset), side = max(1, 8 * size), confidence = sigmoid(m).
 *
 * A jg_model is read-only after jg_model_load: concurrent jg_judge calls are safe (each
 * allocates its own scratch). Deterministic. */
#ifndef SHAPES_JUDGE_H
#define SHAPES_JUDGE_H

#include <stddef.h>
#include <stdint.h>

#include "../world/world.h"

#define JG_NATIVE 32
#define JG_GRID 16
#define JG_OUT_CH 15
#define JG_NCLASSES 12
#define JG_MAX_DETS (JG_GRID * JG_GRID)
#define JG_MAX_SIDE 4096

typedef struct jg_model jg_model;

/* Loads and validates the weights (shapes, dtypes, finite values, metadata format and
 * threshold). NULL with a reason in err on any problem. */
jg_model *jg_model_load(const char *path, char *err, size_t errlen);
void jg_model_free(jg_model *m);
const char *jg_meta(const jg_model *m, const char *key);
double jg_threshold(const jg_model *m);

/* The network on one 32x32 RGB image (rows of 96 bytes): out[15 * 16 * 16], channel-major.
 * 0, or -1 when out of memory. */
int jg_forward(const jg_model *m, const uint8_t *rgb, float *out);

/* Nearest-neighbour resampling of any image to 32x32 (out: 32 * 32 * 3 bytes). */
void jg_resize(const uint8_t *pixels, uint32_t width, uint32_t height, uint32_t stride,
               uint8_t *out);

typedef struct jg_det {
   int shape, colour;
   double box[4]; /* x0, y0, x1, y1 in the 32x32 frame */
   double confidence;
} jg_det_t;

/* Detections from the network's output; returns their count (<= JG_MAX_DETS). */
int jg_decode(const float *out, double threshold, jg_det_t *dets);

/* world.py relative_position: bit SW_LEFT_OF.. set for each relation of a relative to b. */

typedef struct jg_result {
   int pass;
   double score;
   int nfailed;
   char failed[3][128];
   int ndets;
   jg_det_t dets[JG_MAX_DETS];
} jg_result_t;

/* The rules on detections (world.py check's counting and relation, no ambiguity). */
void jg_rules(const jg_det_t *dets, int ndets, const sw_spec_t *spec, jg_result_t *r);

/* The whole judge on one image. 0, or -1 when out of memory. */
int jg_judge(const jg_model *m, const uint8_t *pixels, uint32_t width, uint32_t height,
             uint32_t stride, const sw_spec_t *spec, jg_result_t *r);

/* Details JSON: {"pass":..,"score":..,"failed":[..],"detected":[{"shape","colour","box",
 * "confidence"}]}, boxes scaled to a width x height image. malloc'ed, NULL when out of
 * memory. */
char *jg_result_json(const jg_result_t *r, uint32_t width, uint32_t height);

#endif
