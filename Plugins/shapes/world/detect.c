/* Plugins/shapes/world/detect.c: pixel classification, components, detections, relations
 * and the checker (world.py classify_pixels, _components, detect, relative_position,
 * check; shapes are fitted in fit.c), with the same arithmetic so the verdicts are
 * bit-identical:
 *   - squared distances are exact integers (world.py computes them in float32, where
 *     every value involved, <= 3 * 255^2, is exact too);
 *   - relation arithmetic is IEEE double in world.py's operation order (box edges are
 *     multiples of 0.5, offsets of 0.25, so the norm's squared sum is exact). */
#include "world.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const uint8_t sw_palette[SW_NCOLOURS + 1][3] = {
   {0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 0}};

const char *sw_image_problem(const sw_image_t *img) {
   if (img == NULL || img->pixels == NULL)
      return "the image has no pixels";
   if (img->width == 0 || img->height == 0)
      return "the image is empty (0 pixels wide or high)";
   if (img->width > SW_MAX_SIDE || img->height > SW_MAX_SIDE)
      return "the image is larger than 4096 pixels in a dimension";
   if (img->stride < (uint64_t)img->width * 3)
      return "the image's stride is smaller than width * 3";
   return NULL;
}

const char *sw_check_image_problem(const sw_image_t *img) {
   const char *problem = sw_image_problem(img);
   if (problem != NULL)
      return problem;
   if (img->width > SW_CHECK_MAX_SIDE || img->height > SW_CHECK_MAX_SIDE)
      return "the checker judges images of at most 64x64 pixels (the shapes world is 32x32)";
   return NULL;
}

int sw_palette_dist2(const uint8_t rgb[3], int label) {
   int d2 = 0;
   for (int k = 0; k < 3; k++) {
      const int d = (int)rgb[k] - (int)sw_palette[label][k];
      d2 += d * d;
   }
   return d2;
}

int sw_classify_pixel(const uint8_t rgb[3]) {
   int best = 0, best_d2 = sw_palette_dist2(rgb, 0);
   for (int label = 1; label <= SW_NCOLOURS; label++) {
      const int d2 = sw_palette_dist2(rgb, label);
      if (d2 < best_d2) { /* strict: ties go to the lower label (numpy argmin) */
         best = label;
         best_d2 = d2;
      }
   }
   return best;
}

void sw_label_image(const sw_image_t *img, uint8_t *labels) {
   for (uint32_t y = 0; y < img->height; y++) {
      const uint8_t *row = img->pixels + (size_t)y * img->stride;
      for (uint32_t x = 0; x < img->width; x++)
         labels[(size_t)y * img->width + x] = (uint8_t)sw_classify_pixel(row + (size_t)x * 3);
   }
}

int sw_components(const uint8_t *labels, uint32_t width, uint32_t height,
                  sw_component_t **out, int *count, int32_t *ids) {
   const size_t npix = (size_t)width * height;
   *out = NULL;
   *count = 0;
   uint8_t *seen = calloc(npix > 0 ? npix : 1, 1);
   uint32_t *stack = malloc((npix > 0 ? npix : 1) * sizeof *stack);
   size_t cap = 16;
   sw_component_t *comps = malloc(cap * sizeof *comps);
   if (seen == NULL || stack == NULL || comps == NULL) {
      free(seen);
      free(stack);
      free(comps);
      return -1;
   }
   int n = 0;
   if (ids != NULL)
      for (size_t i = 0; i < npix; i++)
         ids[i] = -1;
   for (int label = 1; label <= SW_NCOLOURS; label++) {
      for (size_t start = 0; start < npix; start++) {
         if (labels[start] != label || seen[start])
            continue;
         size_t top = 0;
         stack[top++] = (uint32_t)start;
         seen[start] = 1;
         int area = 0;
         int x0 = (int)(start % width), x1 = x0, y0 = (int)(start / width), y1 = y0;
         while (top > 0) {
            const uint32_t at = stack[--top];
            const int cx = (int)(at % width), cy = (int)(at / width);
            if (ids != NULL)
               ids[at] = n;
            area++;
            if (cx < x0) x0 = cx;
            if (cx > x1) x1 = cx;
            if (cy < y0) y0 = cy;
            if (cy > y1) y1 = cy;
            /* up, down, left, right */
            if (cy > 0 && labels[at - width] == label && !seen[at - width]) {
               seen[at - width] = 1;
               stack[top++] = at - width;
            }
            if ((uint32_t)cy + 1 < height && labels[at + width] == label && !seen[at + width]) {
               seen[at + width] = 1;
               stack[top++] = at + width;
            }
            if (cx > 0 && labels[at - 1] == label && !seen[at - 1]) {
               seen[at - 1] = 1;
               stack[top++] = at - 1;
            }
            if ((uint32_t)cx + 1 < width && labels[at + 1] == label && !seen[at + 1]) {
               seen[at + 1] = 1;
               stack[top++] = at + 1;
            }
         }
         if ((size_t)n == cap) {
            sw_component_t *grown = realloc(comps, 2 * cap * sizeof *comps);
            if (grown == NULL) {
               free(seen);
               free(stack);
               free(comps);
               return -1;
            }
            comps = grown;
            cap *= 2;
         }
         comps[n].label = label;
         comps[n].area = area;
         comps[n].x0 = x0;
         comps[n].y0 = y0;
         comps[n].x1 = x1 + 1;
         comps[n].y1 = y1 + 1;
         n++;
      }
   }
   free(seen);
   free(stack);
   *out = comps;
   *count = n;
   return 0;
}

int sw_detect(const sw_image_t *img, sw_det_t **out, int *count) {
   *out = NULL;
   *count = 0;
   const size_t npix = (size_t)img->width * img->height;
   uint8_t *labels = malloc(npix > 0 ? npix : 1);
   int32_t *ids = malloc((npix > 0 ? npix : 1) * sizeof *ids);
   if (labels == NULL || ids == NULL) {
      free(labels);
      free(ids);
      return -1;
   }
   sw_label_image(img, labels);
   sw_component_t *comps;
   int ncomps;
   if (sw_components(labels, img->width, img->height, &comps, &ncomps, ids) != 0) {
      free(labels);
      free(ids);
      return -1;
   }
   sw_det_t *dets = malloc((ncomps > 0 ? (size_t)ncomps : 1) * sizeof *dets);
   if (dets == NULL) {
      free(comps);
      free(labels);
      free(ids);
      return -1;
   }
   int n = 0, rc = 0;
   for (int i = 0; i < ncomps && rc == 0; i++) {
      const sw_component_t *c = &comps[i];
      if (c->area < SW_MIN_AREA)
         continue;
      const int box[4] = {c->x0, c->y0, c->x1, c->y1};
      sw_fit_t fit;
      if (sw_fit_shape(img, labels, ids, i, c->label, box, &fit) != 0) {
         rc = -1;
         break;
      }
      sw_det_t *d = &dets[n++];
      const sw_fit_shape_t *f = &fit.per_shape[fit.best];
      d->colour = c->label - 1;
      d->area = c->area;
      d->shape = fit.ambiguous ? SW_AMBIGUOUS : fit.best;
      d->ncandidates = fit.ncandidates;
      memcpy(d->candidates, fit.candidates, sizeof d->candidates);
      d->fit = f->r2;
      if (fit.ambiguous) {
         for (int k = 0; k < 4; k++)
            d->box[k] = (double)box[k];
      } else {
         d->box[0] = f->X0 / 2.0;
         d->box[1] = f->Y0 / 2.0;
         d->box[2] = (f->X0 + f->S) / 2.0;
         d->box[3] = (f->Y0 + f->S) / 2.0;
      }
   }
   free(comps);
   free(labels);
   free(ids);
   if (rc != 0 || n == 0) {
      free(dets);
      dets = NULL;
      n = 0;
   }
   *out = dets;
   *count = n;
   return rc;
}

int sw_det_matches(const sw_det_t *d, const sw_group_t *g) {
   return d->shape == g->shape && (g->colour < 0 || d->colour == g->colour);
}

int sw_det_may_match(const sw_det_t *d, const sw_group_t *g) {
   if (g->colour >= 0 && d->colour != g->colour)
      return 0;
   if (d->shape == g->shape)
      return 1;
   if (d->shape != SW_AMBIGUOUS)
      return 0;
   for (int k = 0; k < d->ncandidates; k++)
      if (d->candidates[k] == g->shape)
         return 1;
   return 0;
}

int sw_check(const sw_image_t *img, const sw_spec_t *spec, sw_check_t *out) {
   memset(out, 0, sizeof *out);
   if (sw_detect(img, &out->dets, &out->ndets) != 0)
      return -1;
   int failed = 0, total = 0;
   for (int gi = 0; gi < spec->ngroups; gi++) {
      const sw_group_t *g = &spec->groups[gi];
      sw_constraint_t *c = &out->c[total++];
      c->kind = 0;
      c->group = gi;
      c->first_pair[0] = c->first_pair[1] = -1;
      for (int i = 0; i < out->ndets; i++) {
         c->found += sw_det_matches(&out->dets[i], g);
         c->maybe += sw_det_may_match(&out->dets[i], g) && !sw_det_matches(&out->dets[i], g);
      }
      c->ok = g->exact ? c->found == g->count && c->maybe == 0 : c->found >= g->count;
      failed += !c->ok;
   }
   if (spec->relation >= 0 && spec->ngroups == 2) {
      sw_constraint_t *c = &out->c[total++];
      c->kind = 1;
      c->group = 0;
      c->first_pair[0] = c->first_pair[1] = -1;
      for (int i = 0; i < out->ndets; i++) {
         if (!sw_det_matches(&out->dets[i], &spec->groups[0]))
            continue;
         for (int j = 0; j < out->ndets; j++) {
            if (!sw_det_matches(&out->dets[j], &spec->groups[1]))
               continue;
            const unsigned rel = sw_relations(out->dets[i].box, out->dets[j].box);
            if (c->found == 0) {
               c->first_pair[0] = i;
               c->first_pair[1] = j;
            }
            c->found++;
            c->rels |= rel;
            if (rel & (1u << spec->relation))
               c->ok = 1;
         }
      }
      failed += !c->ok;
   }
   out->nconstraints = total;
   out->pass = failed == 0;
   out->score = total == 0 ? 1.0 : (double)(total - failed) / (double)total;
   return 0;
}

void sw_check_free(sw_check_t *c) {
   free(c->dets);
   c->dets = NULL;
   c->ndets = 0;
}

/* ---- text ------------------------------------------------------------------------------ */

static size_t clip(int len, size_t size) {
   return len < 0 ? 0 : (size_t)len >= size ? size - 1 : (size_t)len;
}

static size_t rel_list(unsigned rels, char *out, size_t size) {
   size_t len = 0;
   out[0] = '\0';
   for (int r = 0; r < SW_NRELATIONS; r++)
      if (rels & (1u << r))
         len += clip(snprintf(out + len, size - len, "%s%s", len ? ", " : "",
                              sw_relation_names[r]), size - len);
   return len;
}

size_t sw_constraint_what(const sw_spec_t *spec, const sw_constraint_t *c, char *out,
                          size_t size) {
   char a[32], b[32];
   if (c->kind == 0) {
      const sw_group_t *g = &spec->groups[c->group];
      sw_group_noun(g, 0, a, sizeof a);
      return clip(snprintf(out, size, "count(%s)%s%d", a, g->exact ? "=" : ">=", g->count),
                  size);
   }
   sw_group_noun(&spec->groups[0], 0, a, sizeof a);
   sw_group_noun(&spec->groups[1], 0, b, sizeof b);
   return clip(snprintf(out, size, "%s %s %s", a, sw_relation_names[spec->relation], b),
               size);
}

size_t sw_constraint_failure(const sw_spec_t *spec, const sw_constraint_t *c, char *out,
                             size_t size) {
   char a[40], b[40];
   if (c->kind == 0) {
      const sw_group_t *g = &spec->groups[c->group];
      sw_group_words(g, a, sizeof a);
      if (g->exact && c->maybe > 0)
         return clip(snprintf(out, size, "%s: want exactly %d, found %d (and %d ambiguous)", a,
                              g->count, c->found, c->maybe), size);
      return clip(snprintf(out, size, "%s: want %s %d, found %d", a,
                           g->exact ? "exactly" : "at least", g->count, c->found), size);
   }
   sw_group_words(&spec->groups[0], a, sizeof a);
   sw_group_words(&spec->groups[1], b, sizeof b);
   if (c->found == 0)
      return clip(snprintf(out, size, "%s %s %s: no such pair of objects", a,
                           sw_relation_names[spec->relation], b), size);
   char rels[64];
   rel_list(c->rels, rels, sizeof rels);
   return clip(snprintf(out, size, "%s %s %s: not satisfied (found: %s)", a,
                        sw_relation_names[spec->relation], b, rels[0] ? rels : "no relation"),
               size);
}

void sw_check_json(const sw_spec_t *spec, const sw_check_t *c, sw_buf_t *b) {
   char text[200];
   sw_buf_put(b, "{\"pass\":");
   sw_buf_put(b, c->pass ? "true" : "false");
   sw_buf_put(b, ",\"score\":");
   sw_buf_num(b, c->score, 6);
   sw_buf_put(b, ",\"constraints\":[");
   for (int i = 0; i < c->nconstraints; i++) {
      const sw_constraint_t *k = &c->c[i];
      sw_buf_put(b, i ? ",{\"what\":" : "{\"what\":");
      sw_constraint_what(spec, k, text, sizeof text);
      sw_buf_str(b, text);
      sw_buf_put(b, k->ok ? ",\"ok\":true,\"found\":" : ",\"ok\":false,\"found\":");
      if (k->kind == 0) {
         sw_buf_int(b, k->found);
         if (k->maybe > 0) {
            sw_buf_put(b, ",\"ambiguous\":");
            sw_buf_int(b, k->maybe);
         }
      } else {
         sw_buf_put(b, "[");
         int first = 1;
         for (int r = 0; r < SW_NRELATIONS; r++)
            if (k->rels & (1u << r)) {
               sw_buf_put(b, first ? "" : ",");
               sw_buf_str(b, sw_relation_names[r]);
               first = 0;
            }
         sw_buf_put(b, "],\"pairs\":");
         sw_buf_int(b, k->found);
      }
      sw_buf_put(b, "}");
   }
   sw_buf_put(b, "],\"failed\":[");
   int nf = 0;
   for (int i = 0; i < c->nconstraints; i++) {
      if (c->c[i].ok)
         continue;
      sw_constraint_failure(spec, &c->c[i], text, sizeof text);
      sw_buf_put(b, nf++ ? "," : "");
      sw_buf_str(b, text);
   }
   sw_buf_put(b, "],\"detected\":[");
   for (int i = 0; i < c->ndets; i++) {
      const sw_det_t *d = &c->dets[i];
      sw_buf_put(b, i ? ",{\"shape\":" : "{\"shape\":");
      if (d->shape == SW_AMBIGUOUS) {
         sw_buf_put(b, "null,\"ambiguous\":true,\"candidates\":[");
         for (int k = 0; k < d->ncandidates; k++) {
            sw_buf_put(b, k ? "," : "");
            sw_buf_str(b, sw_shape_names[d->candidates[k]]);
         }
         sw_buf_put(b, "]");
      } else {
         sw_buf_str(b, sw_shape_names[d->shape]);
      }
      sw_buf_put(b, ",\"colour\":\"");
      sw_buf_put(b, sw_colour_names[d->colour]);
      sw_buf_put(b, "\",\"box\":[");
      for (int k = 0; k < 4; k++) {
         if (k)
            sw_buf_put(b, ",");
         sw_buf_num(b, d->box[k], 1);
      }
      sw_buf_put(b, "],\"area\":");
      sw_buf_int(b, d->area);
      sw_buf_put(b, ",\"fit\":");
      sw_buf_num(b, d->fit, 4);
      sw_buf_put(b, "}");
   }
   sw_buf_put(b, "]}");
}
