/* Plugins/shapes/world/world.h: the shapes world's caption grammar and exact checker in C.
 *
 * A re-implementation of tools/shapes/world.py (parse, classify_pixels, _components,
 * classify_shape, detect, relative_position, check) with IDENTICAL rules, shared by the
 * shapes-checker, shapes-quality and shapes-reflector plugins. Pure C11 + libm, no global
 * mutable state: every function is reentrant (scratch memory is allocated per call).
 *
 * Rules (see world.py for the reference):
 *   - pixel label = nearest of background (0,0,0), red, green, blue, yellow in squared RGB
 *     distance; ties go to the lower label (background < red < green < blue < yellow);
 *   - per colour, 4-connected components (row-major scan order); components with area < 6
 *     are noise and ignored;
 *   - shape by template fitting (fit.c, world.py `fit_shape`): the shape whose blurred,
 *     supersampled template best explains the component's ink; *ambiguous* when no shape
 *     fits well or two fit about equally (an ambiguous blob never makes an image pass);
 *   - counting: "a X" = at least one sure match, a number word = exactly that many under
 *     every reading of the ambiguous blobs;
 *   - relations: GenEval's rule (sw_relations), threshold 0.1;
 *   - score = satisfied constraints / constraints (1 with no constraint: the empty caption).
 * World.py's images are 32x32; here any width x height up to SW_CHECK_MAX_SIDE works with
 * the same rules (absolute pixel units: MIN_AREA stays 6). */
#ifndef SHAPES_WORLD_H
#define SHAPES_WORLD_H

#include <stddef.h>
#include <stdint.h>

#define SW_MAX_TOKENS 8
#define SW_MIN_AREA 6
#define SW_MAX_OBJECTS 4
#define SW_NCOLOURS 4
#define SW_NSHAPES 3
#define SW_NRELATIONS 4
#define SW_MAX_SIDE 4096 /* images larger than this in either dimension are refused */
#define SW_CHECK_MAX_SIDE 64 /* the checker fits templates: at most 64 pixels a side */

/* template fitting (world.py FIT_*) */
#define SW_FIT_PAD 5
#define SW_FIT_NBLURS 5
#define SW_FIT_MAX_TAPS 9
#define SW_FIT_SIZE_RANGE 6
#define SW_FIT_SHIFT 1
#define SW_FIT_MIN 0.80
#define SW_FIT_MARGIN 1.25

/* colours: 0 red, 1 green, 2 blue, 3 yellow (pixel label = colour + 1; 0 = background) */
enum { SW_RED = 0, SW_GREEN = 1, SW_BLUE = 2, SW_YELLOW = 3 };
enum { SW_CIRCLE = 0, SW_SQUARE = 1, SW_TRIANGLE = 2 };
enum { SW_LEFT_OF = 0, SW_RIGHT_OF = 1, SW_ABOVE = 2, SW_BELOW = 3 };

extern const char *const sw_colour_names[SW_NCOLOURS];
extern const char *const sw_shape_names[SW_NSHAPES];
extern const char *const sw_relation_names[SW_NRELATIONS];
extern const uint8_t sw_palette[SW_NCOLOURS + 1][3]; /* [0] background, then colours */

/* ---- captions ------------------------------------------------------------------------ */
typedef struct sw_group {
   int shape;  /* SW_CIRCLE.. */
   int colour; /* SW_RED.., or -1 when the caption names none */
   int count;  /* 1..4 */
   int exact;  /* 1 for a number word ("one".."four"): exactly count; 0 for "a": >= count */
} sw_group_t;

typedef struct sw_spec {
   int ngroups;          /* 0 (empty caption), 1 or 2 */
   sw_group_t groups[2];
   int relation;         /* -1, or SW_LEFT_OF..: groups[0] relative to groups[1] */
} sw_spec_t;

/* world.py `parse`: 0 and *spec on success; -1 and a message for the user in err (what is
 * not understood and what would be) when the caption is outside the grammar. */
int sw_parse(const char *caption, sw_spec_t *spec, char *err, size_t err_size);

/* world.py `spec_to_caption` / `_group_words`. Return the length written (truncated to
 * size - 1; 64 bytes are always enough). */
size_t sw_spec_caption(const sw_spec_t *spec, char *out, size_t size);
size_t sw_group_words(const sw_group_t *g, char *out, size_t size);
/* "red circle" / "circle" (plural: "red circles"), no determiner. */
size_t sw_group_noun(const sw_group_t *g, int plural, char *out, size_t size);

/* ---- pixels and detections -------------------------------------------------------- */
typedef struct sw_image {
   uint32_t width, height, stride; /* stride in bytes, >= width * 3 */
   const uint8_t *pixels;          /* RGB, rows top to bottom */
} sw_image_t;

/* NULL when the image is usable, else a static reason. */
const char *sw_image_problem(const sw_image_t *img);
/* The same for the checker (sw_check), which also needs at most SW_CHECK_MAX_SIDE a side. */
const char *sw_check_image_problem(const sw_image_t *img);

/* world.py `classify_pixels` for one pixel: 0 background, 1 red, 2 green, 3 blue, 4 yellow. */
int sw_classify_pixel(const uint8_t rgb[3]);
/* Squared RGB distance of a pixel to palette entry `label` (0 = background). */
int sw_palette_dist2(const uint8_t rgb[3], int label);

typedef struct sw_component {
   int label;            /* 1..4 (colour + 1) */
   int area;
   int x0, y0, x1, y1;   /* bounding box, x1/y1 exclusive */
} sw_component_t;

/* Labels every pixel (labels: width * height bytes, row-major). */
void sw_label_image(const sw_image_t *img, uint8_t *labels);
/* All 4-connected components of labels 1..4 (any area), ordered by label, then by the
 * row-major position of their first pixel (world.py's order). *out is malloc'ed (free it);
 * ids (width * height, may be NULL) receives each pixel's component index, -1 for
 * background. Returns 0, or -1 when out of memory. */
int sw_components(const uint8_t *labels, uint32_t width, uint32_t height,
                  sw_component_t **out, int *count, int32_t *ids);

/* ---- shape fitting (fit.c) ---------------------------------------------------------- */
typedef struct sw_fit_shape {
   double r2;      /* squared correlation of the best template of this shape, -1 if none */
   int S, X0, Y0;  /* its box: side and top-left corner, in half pixels */
   int taps;       /* its blur kernel (binomial taps: 1 none .. 9) */
} sw_fit_shape_t;

typedef struct sw_fit {
   sw_fit_shape_t per_shape[SW_NSHAPES];
   int best;            /* shape with the highest r2 */
   int ambiguous;       /* no shape fits clearly */
   int ncandidates;     /* shapes within the margin of the best, best first (1 if clear) */
   int candidates[SW_NSHAPES];
} sw_fit_t;

/* world.py `fit_shape` for component `cid` (label 1..4, pixel box `box`, x1/y1 exclusive)
 * of an image whose labels and component ids are given. 0, or -1 when out of memory. */
int sw_fit_shape(const sw_image_t *img, const uint8_t *labels, const int32_t *comp_ids,
                 int cid, int label, const int box[4], sw_fit_t *out);

#define SW_AMBIGUOUS (-1)

typedef struct sw_det {
   int colour, area;
   int shape;          /* SW_CIRCLE.., or SW_AMBIGUOUS */
   int ncandidates;    /* shapes it may be, best first (just `shape` when clear) */
   int candidates[SW_NSHAPES];
   double fit;         /* r2 of the best template */
   double box[4];      /* x0, y0, x1, y1 (exclusive), pixels in steps of 0.5: the fitted
                        * template's box, or the pixels' box when ambiguous */
} sw_det_t;

/* world.py `detect`. *out is malloc'ed (may be NULL when *count is 0); 0 or -1 (memory). */
int sw_detect(const sw_image_t *img, sw_det_t **out, int *count);

/* world.py `relative_position`: bit (1 << SW_LEFT_OF) etc. for every relation that holds
 * for box a relative to box b. */
unsigned sw_relations(const double a[4], const double b[4]);

/* ---- the checker -------------------------------------------------------------------- */
typedef struct sw_constraint {
   int kind;       /* 0 count of groups[group], 1 the relation */
   int group;
   int ok;
   int found;      /* count: sure matches; relation: candidate pairs */
   int maybe;      /* count: ambiguous detections that may match too */
   unsigned rels;  /* relation: union of the relations found over candidate pairs */
   int first_pair[2]; /* relation: detection indices of the first candidate pair, or -1 */
} sw_constraint_t;

typedef struct sw_check {
   int pass;
   double score;
   int nconstraints;
   sw_constraint_t c[3];
   int ndets;
   sw_det_t *dets; /* malloc'ed, release with sw_check_free */
} sw_check_t;

/* A sure match (world.py `_matches`) / a sure or possible one (`_may_match`). */
int sw_det_matches(const sw_det_t *d, const sw_group_t *g);
int sw_det_may_match(const sw_det_t *d, const sw_group_t *g);
/* world.py `check`: 0, or -1 when out of memory. The image must pass
 * sw_check_image_problem. */
int sw_check(const sw_image_t *img, const sw_spec_t *spec, sw_check_t *out);
void sw_check_free(sw_check_t *c);

/* ---- JSON output -------------------------------------------------------------------- */
typedef struct sw_buf {
   char *data;
   size_t len, cap;
   int oom; /* set once an allocation failed; the text is then incomplete */
} sw_buf_t;

void sw_buf_init(sw_buf_t *b);
void sw_buf_free(sw_buf_t *b);
void sw_buf_put(sw_buf_t *b, const char *text);
void sw_buf_putn(sw_buf_t *b, const char *text, size_t n);
void sw_buf_int(sw_buf_t *b, long v);
/* A finite number with up to `decimals` decimals, trailing zeros trimmed, locale-free. */
void sw_buf_num(sw_buf_t *b, double v, int decimals);
/* A JSON string literal with quotes; escapes ", \ and control bytes (UTF-8 passes). */
void sw_buf_str(sw_buf_t *b, const char *text);

/* {"pass":..,"score":..,"constraints":[..],"failed":[..],"detected":[..]} */
void sw_check_json(const sw_spec_t *spec, const sw_check_t *c, sw_buf_t *b);
/* The human-readable text of constraint i ("count(red circle)=2") and of its failure
 * ("two red circles: want exactly 2, found 1"). */
size_t sw_constraint_what(const sw_spec_t *spec, const sw_constraint_t *c, char *out,
                          size_t size);
size_t sw_constraint_failure(const sw_spec_t *spec, const sw_constraint_t *c, char *out,
                             size_t size);

/* ---- quality (shapes-quality) ------------------------------------------------------- */
typedef struct sw_quality {
   double score;        /* weighted geometric mean of the five sub-scores, in [0, 1] */
   double background;   /* clean plain background */
   double crisp;        /* few smear pixels */
   double saturation;   /* object pixels close to their palette colour */
   double size;         /* object pixels in plausibly sized objects */
   double speckle;      /* few tiny components */
   int objects;         /* components with area >= 6 */
   int speckles;        /* components with area < 6 */
   int smear_pixels;
   int object_pixels;
   int background_pixels;
} sw_quality_t;

/* 0, or -1 when out of memory. See quality.c for the formula. */
int sw_quality(const sw_image_t *img, sw_quality_t *q);
void sw_quality_json(const sw_quality_t *q, sw_buf_t *b);

/* ---- reflection (shapes-reflector) -------------------------------------------------- */
/* Writes the reflection JSON object for one image whose check result is `c`:
 * {"feedback":..,"negative_prompt":..(only when failing),"revised_prompt":..,"pass":..,
 *  "score":..,"round":round}. */
void sw_reflect_json(const sw_spec_t *spec, const sw_check_t *c, long round, sw_buf_t *b);
/* The same for several views of one trajectory (assay.reflector-views.draft/1): feedback
 * and revised prompt from `c`, the check of the primary view (sketch or final) named
 * `primary_name`; the negative prompt keeps only the candidates that `preview` (the check of
 * the preview, NULL when there is none) also shows, when the preview is readable (see
 * reflect.c). Adds "views" (the views used), "confirmed_by_preview" and, when the preview
 * showed none of the primary's negatives, "unconfirmed_negative" (what was dropped).
 * With preview NULL the fields before "views" are exactly sw_reflect_json's. */
void sw_reflect_views_json(const sw_spec_t *spec, const sw_check_t *c,
                           const sw_check_t *preview, const char *primary_name, long round,
                           sw_buf_t *b);

#endif
