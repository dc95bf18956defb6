/* Plugins/shapes/world/quality.c: a no-reference, prompt-agnostic image-quality score for
 * shapes-world images (shapes-quality; the aesthetic-score analogue).
 *
 * Per pixel: label L = nearest palette entry (background included, as the checker),
 * d1 = RGB distance to it, d2 = distance to the second nearest entry.
 *   smear pixel : d1 > 0.5 * d2 (it sits at least a third of the way between two palette
 *                 colours: blurred edges, colour mixtures);
 *   ink         : every pixel that is not background-labelled, plus smear pixels.
 * Sub-scores, each in [0, 1]:
 *   background = mean over background-labelled pixels of ramp(d1; 16, 64)
 *                (ramp(d; a, b) = 1 for d <= a, 0 for d >= b, linear between): how close
 *                the plain background is to the background colour (noise, haze lower it);
 *   crisp      = 1 - smear / ink (1 without ink): few intermediate pixels;
 *   saturation = mean over colour-labelled non-smear pixels of ramp(d1; 16, 112) (1 without
 *                any): object pixels have their palette colour, not a washed-out one;
 *   size       = (pixels of plausible objects / pixels of all objects) * min(1, 4 / number
 *                of plausible objects); objects = same-colour 4-connected components of
 *                area >= 6 (the checker's detections); plausible = both box sides within
 *                [5, 16] * S / 32 (S = min(width, height); scenes draw sides 7..12 at 32)
 *                and fill = area / box area >= 0.3. 0 when there is no object at all;
 *   speckle    = 1 / (1 + n / 4), n = components of area < 6 (the checker's noise).
 * score = exp(0.25 ln background + 0.25 ln crisp + 0.20 ln saturation + 0.15 ln size
 *             + 0.15 ln speckle), each sub-score floored at 1e-4: a weighted geometric mean,
 * so one severe defect pulls the score down; clean renders score 1.
 * Deterministic (integer classification, fixed-order double sums), no global state. */
#include "world.h"

#include <math.h>
#include <stdlib.h>

static double ramp(double d, double a, double b) {
   if (d <= a)
      return 1.0;
   if (d >= b)
      return 0.0;
   return (b - d) / (b - a);
}

int sw_quality(const sw_image_t *img, sw_quality_t *q) {
   const uint32_t w = img->width, h = img->height;
   const size_t npix = (size_t)w * h;
   uint8_t *labels = calloc(npix > 0 ? npix : 1, 1);
   if (labels == NULL)
      return -1;
   double bg_sum = 0, sat_sum = 0;
   long bg_n = 0, sat_n = 0, smear = 0, ink = 0, obj_px = 0;
   for (uint32_t y = 0; y < h; y++) {
      const uint8_t *row = img->pixels + (size_t)y * img->stride;
      for (uint32_t x = 0; x < w; x++) {
         const uint8_t *px = row + (size_t)x * 3;
         /* nearest (ties to the lower label, as the checker) and second nearest */
         const int best = sw_classify_pixel(px);
         const int d1 = sw_palette_dist2(px, best);
         int d2 = -1;
         for (int label = 0; label <= SW_NCOLOURS; label++) {
            if (label == best)
               continue;
            const int d = sw_palette_dist2(px, label);
            if (d2 < 0 || d < d2)
               d2 = d;
         }
         labels[(size_t)y * w + x] = (uint8_t)best;
         const double dist1 = sqrt((double)d1), dist2 = sqrt((double)d2);
         const int is_smear = dist1 > 0.5 * dist2;
         smear += is_smear;
         if (best != 0 || is_smear)
            ink++;
         if (best == 0) {
            bg_sum += ramp(dist1, 16, 64);
            bg_n++;
         } else {
            obj_px++;
            if (!is_smear) {
               sat_sum += ramp(dist1, 16, 112);
               sat_n++;
            }
         }
      }
   }
   sw_component_t *comps;
   int ncomps;
   const int rc = sw_components(labels, w, h, &comps, &ncomps, NULL);
   free(labels);
   if (rc != 0)
      return -1;
   const double side = (double)(w < h ? w : h) / 32.0;
   const double lo = 5.0 * side, hi = 16.0 * side;
   long all_area = 0, plausible_area = 0;
   int objects = 0, plausible = 0, speckles = 0;
   for (int i = 0; i < ncomps; i++) {
      const sw_component_t *c = &comps[i];
      if (c->area < SW_MIN_AREA) {
         speckles++;
         continue;
      }
      objects++;
      all_area += c->area;
      const int bw = c->x1 - c->x0, bh = c->y1 - c->y0;
      const double fill = (double)c->area / ((double)bw * (double)bh);
      if (bw >= lo && bw <= hi && bh >= lo && bh <= hi && fill >= 0.3) {
         plausible++;
         plausible_area += c->area;
      }
   }
   free(comps);

   q->background = bg_n > 0 ? bg_sum / (double)bg_n : 0.0;
   q->crisp = ink > 0 ? 1.0 - (double)smear / (double)ink : 1.0;
   q->saturation = sat_n > 0 ? sat_sum / (double)sat_n : 1.0;
   q->size = 0.0;
   if (all_area > 0) {
      q->size = (double)plausible_area / (double)all_area;
      if (plausible > SW_MAX_OBJECTS)
         q->size *= (double)SW_MAX_OBJECTS / (double)plausible;
   }
   q->speckle = 1.0 / (1.0 + speckles / 4.0);
   q->objects = objects;
   q->speckles = speckles;
   q->smear_pixels = (int)smear;
   q->object_pixels = (int)obj_px;
   q->background_pixels = (int)bg_n;
   static const double weights[5] = {0.25, 0.25, 0.20, 0.15, 0.15};
   const double subs[5] = {q->background, q->crisp, q->saturation, q->size, q->speckle};
   double log_sum = 0;
   for (int k = 0; k < 5; k++)
      log_sum += weights[k] * log(subs[k] > 1e-4 ? subs[k] : 1e-4);
   q->score = exp(log_sum);
   if (q->score > 1.0)
      q->score = 1.0;
   if (!(q->score >= 0.0))
      q->score = 0.0;
   return 0;
}

void sw_quality_json(const sw_quality_t *q, sw_buf_t *b) {
   sw_buf_put(b, "{\"score\":");
   sw_buf_num(b, q->score, 6);
   sw_buf_put(b, ",\"background\":");
   sw_buf_num(b, q->background, 6);
   sw_buf_put(b, ",\"crisp\":");
   sw_buf_num(b, q->crisp, 6);
   sw_buf_put(b, ",\"saturation\":");
   sw_buf_num(b, q->saturation, 6);
   sw_buf_put(b, ",\"size\":");
   sw_buf_num(b, q->size, 6);
   sw_buf_put(b, ",\"speckle\":");
   sw_buf_num(b, q->speckle, 6);
   sw_buf_put(b, ",\"objects\":");
   sw_buf_int(b, q->objects);
   sw_buf_put(b, ",\"speckles\":");
   sw_buf_int(b, q->speckles);
   sw_buf_put(b, ",\"smear_pixels\":");
   sw_buf_int(b, q->smear_pixels);
   sw_buf_put(b, ",\"object_pixels\":");
   sw_buf_int(b, q->object_pixels);
   sw_buf_put(b, ",\"background_pixels\":");
   sw_buf_int(b, q->background_pixels);
   sw_buf_put(b, "}");
}
