/* Plugins/shapes/world/fit.c: shape by template fitting (world.py `fit_shape`, bit for bit).
 *
 * A blob's shape is the shape whose blurred, supersampled template explains the blob's ink
 * best (squared correlation, gain and offset free). A threshold on one statistic (the old
 * fill ratio) breaks under a soft edge, which moves pixels across it; blurring the template
 * moves it with the image. All arithmetic is integer, then IEEE double on exactly
 * representable integers, in world.py's order: the verdicts and numbers agree exactly. */
#include "world.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const int fit_taps[SW_FIT_NBLURS] = {1, 3, 5, 7, 9}; /* 2b + 1 */
/* on/off channel sets per pixel label (1 red, 2 green, 3 blue, 4 yellow) */
static const int on_ch[5][2] = {{0, 0}, {0, 0}, {1, 1}, {2, 2}, {0, 1}};
static const int off_ch[5][2] = {{0, 0}, {1, 2}, {0, 2}, {0, 1}, {2, 2}};

static int64_t floor_div(int64_t a, int64_t b) { /* b > 0 */
   const int64_t q = a / b;
   return (a % b != 0 && a < 0) ? q - 1 : q;
}

static int ink_of(const uint8_t *p, int label) {
   const int on = p[on_ch[label][0]] < p[on_ch[label][1]] ? p[on_ch[label][0]] : p[on_ch[label][1]];
   const int off = p[off_ch[label][0]] > p[off_ch[label][1]] ? p[off_ch[label][0]] : p[off_ch[label][1]];
   return on > off ? on - off : 0;
}

/* world.py `_centroid_start`: round(num / den - p / q). */
static int64_t centroid_start(int64_t num, int64_t den, int64_t p, int64_t q) {
   return floor_div(2 * (num * q - p * den) + den * q, 2 * den * q);
}

/* world.py `_coverage`, on a grid padded by R = SW_FIT_MAX_TAPS / 2 on every side (the
 * widest blur's reach): raw[(gy + R) * side + gx + R] = coverage of pixel (gx, gy), 0..16.
 * Returns side = G + 2R. */
#define FIT_R (SW_FIT_MAX_TAPS / 2)
static int coverage(int shape, int S, int phx, int phy, int64_t *raw) {
   const int G = ((phx > phy ? phx : phy) + S + 1) / 2;
   const int side = G + 2 * FIT_R;
   memset(raw, 0, (size_t)side * side * sizeof *raw);
   const int x0 = 4 * phx, x1 = 4 * (phx + S), y0 = 4 * phy, y1 = 4 * (phy + S);
   const int cx = x0 + 2 * S, cy = y0 + 2 * S, rr = (2 * S) * (2 * S);
   for (int gy = 0; gy < G; gy++)
      for (int gx = 0; gx < G; gx++) {
         int count = 0;
         for (int j = 0; j < 4; j++) {
            const int v = gy * 8 + 2 * j + 1;
            for (int i = 0; i < 4; i++) {
               const int u = gx * 8 + 2 * i + 1;
               if (shape == SW_SQUARE)
                  count += u > x0 && u < x1 && v > y0 && v < y1;
               else if (shape == SW_CIRCLE)
                  count += (u - cx) * (u - cx) + (v - cy) * (v - cy) <= rr;
               else
                  count += v > y0 && v < y1 && 2 * abs(u - cx) <= v - y0;
            }
         }
         raw[(size_t)(gy + FIT_R) * side + (gx + FIT_R)] = count;
      }
   return side;
}

/* One more [1 2 1] pass along both axes, zero padded: after b passes raw is the coverage
 * convolved with the binomial kernel of 2b + 1 taps (world.py `_template`'s raw; the
 * padding holds its whole support, so nothing is cut off). */
static void blur_step(int64_t *raw, int side, int64_t *tmp) {
   for (int y = 0; y < side; y++)
      for (int x = 0; x < side; x++) {
         const int64_t *c = raw + (size_t)y * side + x;
         tmp[(size_t)y * side + x] = 2 * c[0] + (y > 0 ? c[-side] : 0) + (y + 1 < side ? c[side] : 0);
      }
   for (int y = 0; y < side; y++)
      for (int x = 0; x < side; x++) {
         const int64_t *c = tmp + (size_t)y * side + x;
         raw[(size_t)y * side + x] = 2 * c[0] + (x > 0 ? c[-1] : 0) + (x + 1 < side ? c[1] : 0);
      }
}

/* world.py `_template`'s scaling to 0..255, for b blur passes (d = 16 * 16^b). */
static void scale_template(const int64_t *raw, int side, int b, int64_t *out) {
   const int64_t d = (int64_t)16 << (4 * b);
   for (int i = 0; i < side * side; i++)
      out[i] = (raw[i] * 255 + d / 2) / d;
}

int sw_fit_shape(const sw_image_t *img, const uint8_t *labels, const int32_t *comp_ids,
                 int cid, int label, const int box[4], sw_fit_t *out) {
   memset(out, 0, sizeof *out);
   const int w = (int)img->width, h = (int)img->height;
   const int wx0 = box[0] - SW_FIT_PAD > 0 ? box[0] - SW_FIT_PAD : 0;
   const int wy0 = box[1] - SW_FIT_PAD > 0 ? box[1] - SW_FIT_PAD : 0;
   const int wx1 = box[2] + SW_FIT_PAD < w ? box[2] + SW_FIT_PAD : w;
   const int wy1 = box[3] + SW_FIT_PAD < h ? box[3] + SW_FIT_PAD : h;
   const int ww = wx1 - wx0, wh = wy1 - wy0;
   const int L = box[2] - box[0] > box[3] - box[1] ? box[2] - box[0] : box[3] - box[1];
   const int smax = 2 * L + SW_FIT_SIZE_RANGE;
   const int gmax = (1 + smax + 1) / 2 + 2 * FIT_R;
   const size_t gsz = (size_t)gmax * gmax;
   int64_t *o = malloc((size_t)ww * wh * sizeof *o);
   uint8_t *valid = malloc((size_t)ww * wh);
   int64_t *raw = malloc(4 * gsz * sizeof *raw); /* per phase (phx + 2 phy) */
   int64_t *tpl = malloc(4 * gsz * sizeof *tpl);
   int64_t *tmp = malloc(gsz * sizeof *tmp);
   if (o == NULL || valid == NULL || raw == NULL || tpl == NULL || tmp == NULL) {
      free(o);
      free(valid);
      free(raw);
      free(tpl);
      free(tmp);
      return -1;
   }
   int64_t n = 0, so = 0, soo = 0, ax = 0, ay = 0;
   for (int y = wy0; y < wy1; y++)
      for (int x = wx0; x < wx1; x++) {
         const size_t at = (size_t)y * w + x, wi = (size_t)(y - wy0) * ww + (x - wx0);
         const int ok = labels[at] == 0 || comp_ids[at] == cid;
         const int64_t v = ok ? ink_of(img->pixels + (size_t)y * img->stride + (size_t)x * 3, label) : 0;
         valid[wi] = (uint8_t)ok;
         o[wi] = v;
         n += ok;
         so += v;
         soo += v * v;
         ax += (2 * x + 1) * v;
         ay += (2 * y + 1) * v;
      }
   const int64_t var_o = n * soo - so * so;
   for (int shape = 0; shape < SW_NSHAPES; shape++) {
      int have = 0;
      double top = 0;
      int tS = 0, tX = 0, tY = 0, tT = 0;
      const int s_lo = 2 * L - SW_FIT_SIZE_RANGE > 8 ? 2 * L - SW_FIT_SIZE_RANGE : 8;
      for (int S = s_lo; S <= smax; S++) {
         if (so <= 0 || var_o <= 0)
            break;
         const int64_t cx0 = centroid_start(ax, so, S, 2);
         const int64_t cy0 = shape == SW_TRIANGLE ? centroid_start(ay, so, 2 * S, 3)
                                                  : centroid_start(ay, so, S, 2);
         int sides[4];
         for (int ph = 0; ph < 4; ph++)
            sides[ph] = coverage(shape, S, ph & 1, ph >> 1, raw + ph * gsz);
         for (int b = 0; b < SW_FIT_NBLURS; b++) {
            for (int ph = 0; ph < 4; ph++) {
               if (b > 0)
                  blur_step(raw + ph * gsz, sides[ph], tmp);
               scale_template(raw + ph * gsz, sides[ph], b, tpl + ph * gsz);
            }
            for (int64_t Y0 = cy0 - SW_FIT_SHIFT; Y0 <= cy0 + SW_FIT_SHIFT; Y0++)
               for (int64_t X0 = cx0 - SW_FIT_SHIFT; X0 <= cx0 + SW_FIT_SHIFT; X0++) {
                  const int phx = (int)(X0 - 2 * floor_div(X0, 2));
                  const int phy = (int)(Y0 - 2 * floor_div(Y0, 2));
                  const int side = sides[phy * 2 + phx];
                  const int64_t *t_at = tpl + (size_t)(phy * 2 + phx) * gsz;
                  const int64_t tx = floor_div(X0, 2) - FIT_R, ty = floor_div(Y0, 2) - FIT_R;
                  const int64_t gx0 = tx > wx0 ? tx : wx0, gy0 = ty > wy0 ? ty : wy0;
                  const int64_t gx1 = tx + side < wx1 ? tx + side : wx1;
                  const int64_t gy1 = ty + side < wy1 ? ty + side : wy1;
                  if (gx0 >= gx1 || gy0 >= gy1)
                     continue;
                  int64_t st = 0, stt = 0, sot = 0;
                  for (int64_t y = gy0; y < gy1; y++)
                     for (int64_t x = gx0; x < gx1; x++) {
                        const size_t wi = (size_t)(y - wy0) * ww + (size_t)(x - wx0);
                        if (!valid[wi])
                           continue;
                        const int64_t t = t_at[(size_t)(y - ty) * side + (size_t)(x - tx)];
                        st += t;
                        stt += t * t;
                        sot += t * o[wi];
                     }
                  const int64_t var_t = n * stt - st * st;
                  if (var_t <= 0)
                     continue;
                  const int64_t cov = n * sot - so * st;
                  const double score = (double)cov * fabs((double)cov) / (double)var_t;
                  if (!have || score > top) {
                     have = 1;
                     top = score;
                     tS = S;
                     tX = (int)X0;
                     tY = (int)Y0;
                     tT = fit_taps[b];
                  }
               }
         }
      }
      sw_fit_shape_t *f = &out->per_shape[shape];
      f->r2 = have ? top / (double)var_o : -1.0;
      f->S = have ? tS : 0;
      f->X0 = have ? tX : 0;
      f->Y0 = have ? tY : 0;
      f->taps = have ? tT : 0;
   }
   free(o);
   free(valid);
   free(raw);
   free(tpl);
   free(tmp);
   /* rank: r2 descending, ties to the lower shape index (world.py's stable sort) */
   int order[SW_NSHAPES] = {0, 1, 2};
   for (int i = 1; i < SW_NSHAPES; i++)
      for (int j = i; j > 0 && out->per_shape[order[j]].r2 > out->per_shape[order[j - 1]].r2; j--) {
         const int t = order[j];
         order[j] = order[j - 1];
         order[j - 1] = t;
      }
   const double r_first = out->per_shape[order[0]].r2, r_second = out->per_shape[order[1]].r2;
   out->best = order[0];
   out->ambiguous = r_first < SW_FIT_MIN || (1.0 - r_second) < SW_FIT_MARGIN * (1.0 - r_first);
   out->ncandidates = 0;
   if (!out->ambiguous) {
      out->candidates[out->ncandidates++] = order[0];
   } else {
      for (int i = 0; i < SW_NSHAPES; i++)
         if ((1.0 - out->per_shape[order[i]].r2) < SW_FIT_MARGIN * (1.0 - r_first))
            out->candidates[out->ncandidates++] = order[i];
      if (out->ncandidates == 0)
         out->candidates[out->ncandidates++] = order[0];
   }
   return 0;
}
