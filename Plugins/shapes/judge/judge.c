/* judge.c: the shapes judge's network, decoding and rules (see judge.h). */
#include "judge.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/safetensors.h"

/* The architecture (tools/judge/train.py ARCH): name, in, out, stride, dilation, kernel. */
typedef struct jg_layer_spec {
   const char *name;
   int cin, cout, stride, dil, k;
} jg_layer_spec;

#define JG_NLAYERS 6
static const jg_layer_spec jg_arch[JG_NLAYERS] = {
   {"c1", 3, 24, 1, 1, 3},   {"c2", 24, 32, 2, 1, 3}, {"c3", 32, 48, 1, 1, 3},
   {"c4", 48, 48, 1, 2, 3},  {"c5", 48, 48, 1, 2, 3}, {"head", 48, JG_OUT_CH, 1, 1, 1},
};
#define JG_MAX_ACT (24 * JG_NATIVE * JG_NATIVE) /* the largest activation (c1) */

struct jg_model {
   st_file *file;
   float *w[JG_NLAYERS], *b[JG_NLAYERS];
   double threshold;
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void jg_err(char *err, size_t errlen, const char *fmt, ...) {
   if (err == NULL || errlen == 0)
      return;
   va_list args;
   va_start(args, fmt);
   vsnprintf(err, errlen, fmt, args);
   va_end(args);
}

void jg_model_free(jg_model *m) {
   if (m == NULL)
      return;
   for (int l = 0; l < JG_NLAYERS; l++) {
      free(m->w[l]);
      free(m->b[l]);
   }
   st_close(m->file);
   free(m);
}

static float *jg_tensor(const jg_model *m, const char *path, const char *name, int ndim,
                        const long *dims, char *err, size_t errlen) {
   const st_tensor *t = st_find(m->file, name);
   if (t == NULL) {
      jg_err(err, errlen, "%s: tensor \"%s\" is missing (not a shapes-judge weights file?)",
             path, name);
      return NULL;
   }
   if (t->dtype != ST_F32) {
      jg_err(err, errlen, "%s: tensor \"%s\" has dtype %s; F32 expected", path, name,
             st_dtype_name(t->dtype));
      return NULL;
   }
   int ok = t->ndim == ndim;
   for (int k = 0; ok && k < ndim; k++)
      ok = (long)t->shape[k] == dims[k];
   if (!ok) {
      char want[64] = "", got[96] = "";
      size_t wl = 0, gl = 0;
      for (int k = 0; k < ndim && wl < sizeof want; k++)
         wl += (size_t)snprintf(want + wl, sizeof want - wl, k ? ",%ld" : "%ld", dims[k]);
      for (int k = 0; k < t->ndim && k < 8 && gl < sizeof got; k++)
         gl += (size_t)snprintf(got + gl, sizeof got - gl, k ? ",%llu" : "%llu",
                                (unsigned long long)t->shape[k]);
      jg_err(err, errlen, "%s: tensor \"%s\" has shape [%s]; expected [%s]", path, name, got,
             want);
      return NULL;
   }
   float *out = malloc((size_t)t->numel * sizeof *out);
   if (out == NULL) {
      jg_err(err, errlen, "%s: out of memory reading \"%s\"", path, name);
      return NULL;
   }
   st_to_f32(m->file, t, out);
   for (uint64_t i = 0; i < t->numel; i++)
      if (!isfinite(out[i])) {
         jg_err(err, errlen, "%s: tensor \"%s\" holds a non-finite value at index %llu", path,
                name, (unsigned long long)i);
         free(out);
         return NULL;
      }
   return out;
}

jg_model *jg_model_load(const char *path, char *err, size_t errlen) {
   jg_model *m = calloc(1, sizeof *m);
   if (m == NULL) {
      jg_err(err, errlen, "out of memory");
      return NULL;
   }
   m->file = st_open(path, ST_F32, err, errlen);
   if (m->file == NULL) {
      free(m);
      return NULL;
   }
   const char *format = st_meta(m->file, "format");
   if (format == NULL || strcmp(format, "shapes-judge/1") != 0) {
      jg_err(err, errlen, "%s: metadata \"format\" is %s%s%s; \"shapes-judge/1\" expected", path,
             format ? "\"" : "", format ? format : "missing", format ? "\"" : "");
      jg_model_free(m);
      return NULL;
   }
   const char *thr = st_meta(m->file, "threshold");
   char *end = NULL;
   double t = thr != NULL ? strtod(thr, &end) : NAN;
   if (thr == NULL || end == thr || *end != '\0' || !(t > 0.0 && t < 1.0)) {
      jg_err(err, errlen, "%s: metadata \"threshold\" is %s; a number in (0, 1) expected",
             path, thr ? thr : "missing");
      jg_model_free(m);
      return NULL;
   }
   m->threshold = t;
   for (int l = 0; l < JG_NLAYERS; l++) {
      const jg_layer_spec *s = &jg_arch[l];
      char name[32];
      long wd[4] = {s->cout, s->cin, s->k, s->k}, bd[1] = {s->cout};
      snprintf(name, sizeof name, "%s.weight", s->name);
      if ((m->w[l] = jg_tensor(m, path, name, 4, wd, err, errlen)) == NULL) {
         jg_model_free(m);
         return NULL;
      }
      snprintf(name, sizeof name, "%s.bias", s->name);
      if ((m->b[l] = jg_tensor(m, path, name, 1, bd, err, errlen)) == NULL) {
         jg_model_free(m);
         return NULL;
      }
   }
   return m;
}

const char *jg_meta(const jg_model *m, const char *key) {
   return st_meta(m->file, key);
}

double jg_threshold(const jg_model *m) {
   return m->threshold;
}

/* One convolution with zero padding dil * (k / 2): in (cin, h, w) -> out (cout, ho, wo).
 * pad: scratch of cin * (h + 2p) * (w + 2p) floats. Each output sums its taps in the order
 * input channel, kernel row, kernel column, then adds the bias. */
static void jg_conv(const jg_layer_spec *s, const float *wt, const float *bias, const float *in,
                    int h, int w, float *pad, float *out, int ho, int wo, int relu) {
   const int p = s->dil * (s->k / 2), hp = h + 2 * p, wp = w + 2 * p;
   memset(pad, 0, (size_t)s->cin * hp * wp * sizeof *pad);
   for (int c = 0; c < s->cin; c++)
      for (int y = 0; y < h; y++)
         memcpy(pad + ((size_t)c * hp + y + p) * wp + p, in + ((size_t)c * h + y) * w,
                (size_t)w * sizeof *pad);
   /* four output channels at a time share each input row (same sums, fewer loads) */
   int o = 0;
   for (; o + 4 <= s->cout; o += 4) {
      float *restrict op0 = out + (size_t)o * ho * wo, *restrict op1 = op0 + ho * wo,
            *restrict op2 = op1 + ho * wo, *restrict op3 = op2 + ho * wo;
      memset(op0, 0, (size_t)4 * ho * wo * sizeof *op0);
      const size_t wstep = (size_t)s->cin * s->k * s->k;
      for (int c = 0; c < s->cin; c++) {
         const float *ip = pad + (size_t)c * hp * wp;
         for (int ky = 0; ky < s->k; ky++) {
            for (int kx = 0; kx < s->k; kx++) {
               const size_t wi = (((size_t)o * s->cin + c) * s->k + ky) * s->k + kx;
               const float w0 = wt[wi], w1 = wt[wi + wstep], w2 = wt[wi + 2 * wstep],
                           w3 = wt[wi + 3 * wstep];
               for (int y = 0; y < ho; y++) {
                  const float *row = ip + (size_t)(y * s->stride + ky * s->dil) * wp + kx * s->dil;
                  const size_t at = (size_t)y * wo;
                  if (s->stride == 1) {
                     for (int x = 0; x < wo; x++) {
                        const float v = row[x];
                        op0[at + x] += w0 * v;
                        op1[at + x] += w1 * v;
                        op2[at + x] += w2 * v;
                        op3[at + x] += w3 * v;
                     }
                  } else {
                     for (int x = 0; x < wo; x++) {
                        const float v = row[x * s->stride];
                        op0[at + x] += w0 * v;
                        op1[at + x] += w1 * v;
                        op2[at + x] += w2 * v;
                        op3[at + x] += w3 * v;
                     }
                  }
               }
            }
         }
      }
   }
   for (; o < s->cout; o++) {
      float *op = out + (size_t)o * ho * wo;
      memset(op, 0, (size_t)ho * wo * sizeof *op);
      for (int c = 0; c < s->cin; c++) {
         const float *ip = pad + (size_t)c * hp * wp;
         for (int ky = 0; ky < s->k; ky++) {
            for (int kx = 0; kx < s->k; kx++) {
               const float wv = wt[(((size_t)o * s->cin + c) * s->k + ky) * s->k + kx];
               for (int y = 0; y < ho; y++) {
                  const float *row = ip + (size_t)(y * s->stride + ky * s->dil) * wp + kx * s->dil;
                  float *orow = op + (size_t)y * wo;
                  for (int x = 0; x < wo; x++)
                     orow[x] += wv * row[x * s->stride];
               }
            }
         }
      }
   }
   for (o = 0; o < s->cout; o++) {
      float *op = out + (size_t)o * ho * wo;
      for (int i = 0; i < ho * wo; i++) {
         const float v = op[i] + bias[o];
         op[i] = relu && v < 0.0f ? 0.0f : v;
      }
   }
}

#define JG_MAX_PAD (24 * (JG_NATIVE + 2) * (JG_NATIVE + 2)) /* the largest padded input (c2) */

int jg_forward(const jg_model *m, const uint8_t *rgb, float *out) {
   float *buf = malloc(((size_t)2 * JG_MAX_ACT + JG_MAX_PAD) * sizeof *buf);
   if (buf == NULL)
      return -1;
   float *a = buf, *b = buf + JG_MAX_ACT, *pad = buf + 2 * JG_MAX_ACT;
   for (int c = 0; c < 3; c++)
      for (int i = 0; i < JG_NATIVE * JG_NATIVE; i++)
         a[c * JG_NATIVE * JG_NATIVE + i] = (float)rgb[i * 3 + c] / 255.0f;
   int h = JG_NATIVE, w = JG_NATIVE;
   for (int l = 0; l < JG_NLAYERS; l++) {
      const jg_layer_spec *s = &jg_arch[l];
      const int p = s->dil * (s->k / 2);
      const int ho = (h + 2 * p - s->dil * (s->k - 1) - 1) / s->stride + 1;
      const int wo = (w + 2 * p - s->dil * (s->k - 1) - 1) / s->stride + 1;
      const int last = l == JG_NLAYERS - 1;
      jg_conv(s, m->w[l], m->b[l], a, h, w, pad, last ? out : b, ho, wo, !last);
      float *t = a;
      a = b;
      b = t;
      h = ho;
      w = wo;
   }
   free(buf);
   return 0;
}

void jg_resize(const uint8_t *pixels, uint32_t width, uint32_t height, uint32_t stride,
               uint8_t *out) {
   for (int y = 0; y < JG_NATIVE; y++) {
      const uint64_t sy = ((uint64_t)(2 * y + 1) * height) / (2 * JG_NATIVE);
      for (int x = 0; x < JG_NATIVE; x++) {
         const uint64_t sx = ((uint64_t)(2 * x + 1) * width) / (2 * JG_NATIVE);
         const uint8_t *p = pixels + sy * stride + sx * 3;
         memcpy(out + ((size_t)y * JG_NATIVE + x) * 3, p, 3);
      }
   }
}

int jg_decode(const float *out, double threshold, jg_det_t *dets) {
   const int g = JG_GRID, cells = JG_GRID * JG_GRID;
   float mx[JG_GRID * JG_GRID];
   int cls[JG_GRID * JG_GRID];
   for (int i = 0; i < cells; i++) {
      float v = out[i];
      int k = 0;
      for (int c = 1; c < JG_NCLASSES; c++)
         if (out[c * cells + i] > v) {
            v = out[c * cells + i];
            k = c;
         }
      mx[i] = v;
      cls[i] = k;
   }
   const double t = log(threshold / (1.0 - threshold));
   int n = 0;
   for (int i = 0; i < g; i++) {
      for (int j = 0; j < g; j++) {
         const float v = mx[i * g + j];
         if (!((double)v > t))
            continue;
         int peak = 1;
         for (int di = -1; di <= 1 && peak; di++)
            for (int dj = -1; dj <= 1 && peak; dj++) {
               if (di == 0 && dj == 0)
                  continue;
               const int ii = i + di, jj = j + dj;
               if (ii < 0 || ii >= g || jj < 0 || jj >= g)
                  continue;
               const int before = di < 0 || (di == 0 && dj < 0);
               const float u = mx[ii * g + jj];
               if (before ? !(v > u) : !(v >= u))
                  peak = 0;
            }
         if (!peak)
            continue;
         const double cx = 2.0 * ((double)j + (double)out[12 * cells + i * g + j]);
         const double cy = 2.0 * ((double)i + (double)out[13 * cells + i * g + j]);
         double s = 8.0 * (double)out[14 * cells + i * g + j];
         if (!(s > 1.0))
            s = 1.0;
         jg_det_t *d = &dets[n++];
         d->shape = cls[i * g + j] % 3;
         d->colour = cls[i * g + j] / 3;
         d->box[0] = cx - s / 2;
         d->box[1] = cy - s / 2;
         d->box[2] = cx + s / 2;
         d->box[3] = cy + s / 2;
         d->confidence = 1.0 / (1.0 + exp(-(double)v));
      }
   }
   return n;
}

static int jg_matches(const jg_det_t *d, const sw_group_t *g) {
   return d->shape == g->shape && (g->colour < 0 || d->colour == g->colour);
}

void jg_rules(const jg_det_t *dets, int ndets, const sw_spec_t *spec, jg_result_t *r) {
   int total = 0;
   r->nfailed = 0;
   for (int k = 0; k < spec->ngroups; k++) {
      const sw_group_t *g = &spec->groups[k];
      total++;
      int n = 0;
      for (int i = 0; i < ndets; i++)
         n += jg_matches(&dets[i], g);
      char desc[64];
      sw_group_words(g, desc, sizeof desc);
      if (g->exact && n != g->count)
         snprintf(r->failed[r->nfailed++], sizeof r->failed[0],
                  "count '%s': want exactly %d, found %d", desc, g->count, n);
      else if (!g->exact && n < g->count)
         snprintf(r->failed[r->nfailed++], sizeof r->failed[0],
                  "count '%s': want >= %d, found %d", desc, g->count, n);
   }
   if (spec->relation >= 0 && spec->ngroups == 2) {
      total++;
      int ok = 0;
      for (int i = 0; i < ndets && !ok; i++) {
         if (!jg_matches(&dets[i], &spec->groups[0]))
            continue;
         for (int j = 0; j < ndets && !ok; j++)
            if (jg_matches(&dets[j], &spec->groups[1]) &&
                (sw_relations(dets[i].box, dets[j].box) >> spec->relation & 1u))
               ok = 1;
      }
      if (!ok)
         snprintf(r->failed[r->nfailed++], sizeof r->failed[0], "relation '%s' not satisfied",
                  sw_relation_names[spec->relation]);
   }
   if (total == 0) {
      r->pass = 1;
      r->score = 1.0;
      return;
   }
   r->pass = r->nfailed == 0;
   r->score = (double)(total - r->nfailed) / (double)total;
}

int jg_judge(const jg_model *m, const uint8_t *pixels, uint32_t width, uint32_t height,
             uint32_t stride, const sw_spec_t *spec, jg_result_t *r) {
   uint8_t img[JG_NATIVE * JG_NATIVE * 3];
   const uint8_t *src = pixels;
   if (width != JG_NATIVE || height != JG_NATIVE || stride != JG_NATIVE * 3) {
      jg_resize(pixels, width, height, stride, img);
      src = img;
   }
   float *out = malloc((size_t)JG_OUT_CH * JG_GRID * JG_GRID * sizeof *out);
   if (out == NULL)
      return -1;
   if (jg_forward(m, src, out) != 0) {
      free(out);
      return -1;
   }
   r->ndets = jg_decode(out, m->threshold, r->dets);
   free(out);
   jg_rules(r->dets, r->ndets, spec, r);
   return 0;
}

/* ---- details JSON ---------------------------------------------------------------------- */
typedef struct jg_buf {
   char *data;
   size_t len, cap;
   int oom;
} jg_buf;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void jg_put(jg_buf *b, const char *fmt, ...) {
   if (b->oom)
      return;
   for (;;) {
      va_list args;
      va_start(args, fmt);
      int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, args);
      va_end(args);
      if (n < 0) {
         b->oom = 1;
         return;
      }
      if ((size_t)n < b->cap - b->len) {
         b->len += (size_t)n;
         return;
      }
      size_t cap = b->cap * 2 + (size_t)n + 64;
      char *d = realloc(b->data, cap);
      if (d == NULL) {
         b->oom = 1;
         return;
      }
      b->data = d;
      b->cap = cap;
   }
}

/* A number for JSON: finite, at most 4 decimals, no trailing zeros. */
static void jg_num(jg_buf *b, double v) {
   char s[48];
   snprintf(s, sizeof s, "%.4f", isfinite(v) ? v : 0.0);
   char *dot = strchr(s, '.');
   if (dot != NULL) {
      char *e = s + strlen(s) - 1;
      while (e > dot && *e == '0')
         *e-- = '\0';
      if (e == dot)
         *e = '\0';
   }
   if (strcmp(s, "-0") == 0)
      strcpy(s, "0");
   jg_put(b, "%s", s);
}

char *jg_result_json(const jg_result_t *r, uint32_t width, uint32_t height) {
   jg_buf b = {malloc(512), 0, 512, 0};
   if (b.data == NULL)
      return NULL;
   b.data[0] = '\0';
   const double sx = (double)width / JG_NATIVE, sy = (double)height / JG_NATIVE;
   jg_put(&b, "{\"pass\":%s,\"score\":", r->pass ? "true" : "false");
   jg_num(&b, r->score);
   jg_put(&b, ",\"failed\":[");
   for (int i = 0; i < r->nfailed; i++)
      jg_put(&b, "%s\"%s\"", i ? "," : "", r->failed[i]); /* fixed words: nothing to escape */
   jg_put(&b, "],\"detected\":[");
   for (int i = 0; i < r->ndets; i++) {
      const jg_det_t *d = &r->dets[i];
      jg_put(&b, "%s{\"shape\":\"%s\",\"colour\":\"%s\",\"box\":[", i ? "," : "",
             sw_shape_names[d->shape], sw_colour_names[d->colour]);
      const double box[4] = {d->box[0] * sx, d->box[1] * sy, d->box[2] * sx, d->box[3] * sy};
      for (int k = 0; k < 4; k++) {
         if (k)
            jg_put(&b, ",");
         jg_num(&b, box[k]);
      }
      jg_put(&b, "],\"confidence\":");
      jg_num(&b, d->confidence);
      jg_put(&b, "}");
   }
   jg_put(&b, "]}");
   if (b.oom) {
      free(b.data);
      return NULL;
   }
   return b.data;
}
