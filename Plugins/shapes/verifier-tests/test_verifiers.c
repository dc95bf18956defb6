/* Plugins/shapes/verifier-tests/test_verifiers.c: tests of the shapes checker, quality
 * verifier and reflector (world/ directly, and the three plugins through the ABI).
 *
 *   test_verifiers CASES.bin PLUGIN_DIR
 *
 * 1. Every check case of CASES.bin (export_cases.py: renders, defective renders, noisy
 *    renders, model samples, with world.py's verdicts): the C checker must agree exactly
 *    (pass, score, which constraints failed, the detections); every parse case: accept /
 *    refuse and the parsed spec must agree, accepted captions round-trip through the
 *    canonical caption. Also the checker's accuracy on the ground-truth renders.
 * 2. Quality: renders score > 0.9; blur, noise and smears lower the score monotonically.
 * 3. Reflector: exact sentences for known defects; on every fixture image the reflection
 *    is valid JSON, its revised and negative prompts parse, a passing image says so.
 * 4. Plugins (dlopen): descriptors, scores equal to world/, details are valid JSON, the
 *    parse error reaches report_error, malformed images are refused, strided images give
 *    the same scores, four threads at once give the same results.
 * 5. reflect_views (assay.reflector-views.draft/1): a negative prompt names what the sketch
 *    and the (blurred) preview both show, is dropped when the preview disagrees, an
 *    unreadable preview is ignored; the primary view (final > sketch > last known > last);
 *    a sketch alone equals reflect over the fixture; bad inputs refused.
 * The last line is "N passed, M failed"; the exit status is 1 when M > 0.
 * SHV_SHOW=TAG in the environment prints the reflections of the fixture images whose tag
 * contains TAG (e.g. SHV_SHOW=model); SHV_SHOW=views prints the fixture cases whose
 * negative a blurred copy as preview does not fully confirm. */
#define _POSIX_C_SOURCE 200809L
#include <assay/assay.h>
#include <assay/ext/draft/reflector-views.h>

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../world/world.h"

static int passed, failed;
static int verbose_failures = 20;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void expect(int ok, const char *fmt, ...) {
   if (ok) {
      passed++;
      return;
   }
   failed++;
   if (verbose_failures-- > 0) {
      va_list args;
      va_start(args, fmt);
      printf("FAIL: ");
      vprintf(fmt, args);
      printf("\n");
      va_end(args);
   }
}

/* ---- a small JSON validator ------------------------------------------------------------ */
static const char *js_ws(const char *p) {
   while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
      p++;
   return p;
}
static const char *js_value(const char *p, int depth);
static const char *js_string(const char *p) {
   if (*p != '"')
      return NULL;
   for (p++; *p != '"'; p++) {
      if (*p == '\0' || (unsigned char)*p < 0x20)
         return NULL;
      if (*p == '\\') {
         p++;
         if (*p == 'u') {
            for (int i = 1; i <= 4; i++)
               if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f') ||
                     (p[i] >= 'A' && p[i] <= 'F')))
                  return NULL;
            p += 4;
         } else if (strchr("\"\\/bfnrt", *p) == NULL || *p == '\0') {
            return NULL;
         }
      }
   }
   return p + 1;
}
static const char *js_number(const char *p) {
   const char *s = p;
   if (*p == '-')
      p++;
   if (*p == '0')
      p++;
   else if (*p >= '1' && *p <= '9')
      while (*p >= '0' && *p <= '9')
         p++;
   else
      return NULL;
   if (*p == '.') {
      p++;
      if (!(*p >= '0' && *p <= '9'))
         return NULL;
      while (*p >= '0' && *p <= '9')
         p++;
   }
   if (*p == 'e' || *p == 'E') {
      p++;
      if (*p == '+' || *p == '-')
         p++;
      if (!(*p >= '0' && *p <= '9'))
         return NULL;
      while (*p >= '0' && *p <= '9')
         p++;
   }
   return p > s ? p : NULL;
}
static const char *js_value(const char *p, int depth) {
   if (depth > 64)
      return NULL;
   p = js_ws(p);
   if (*p == '{') {
      p = js_ws(p + 1);
      if (*p == '}')
         return p + 1;
      for (;;) {
         p = js_string(js_ws(p));
         if (p == NULL)
            return NULL;
         p = js_ws(p);
         if (*p != ':')
            return NULL;
         p = js_value(p + 1, depth + 1);
         if (p == NULL)
            return NULL;
         p = js_ws(p);
         if (*p == '}')
            return p + 1;
         if (*p != ',')
            return NULL;
         p++;
      }
   }
   if (*p == '[') {
      p = js_ws(p + 1);
      if (*p == ']')
         return p + 1;
      for (;;) {
         p = js_value(p, depth + 1);
         if (p == NULL)
            return NULL;
         p = js_ws(p);
         if (*p == ']')
            return p + 1;
         if (*p != ',')
            return NULL;
         p++;
      }
   }
   if (*p == '"')
      return js_string(p);
   if (strncmp(p, "true", 4) == 0)
      return p + 4;
   if (strncmp(p, "false", 5) == 0)
      return p + 5;
   if (strncmp(p, "null", 4) == 0)
      return p + 4;
   return js_number(p);
}
static int json_valid(const char *text) {
   if (text == NULL)
      return 0;
   const char *end = js_value(text, 0);
   return end != NULL && *js_ws(end) == '\0';
}
/* The string value of "key" in a flat JSON object we wrote (no escapes inside), or "". */
static void json_get(const char *json, const char *key, char *out, size_t size) {
   char pat[64];
   snprintf(pat, sizeof pat, "\"%s\":\"", key);
   out[0] = '\0';
   const char *p = strstr(json, pat);
   if (p == NULL)
      return;
   p += strlen(pat);
   size_t n = 0;
   while (p[n] != '"' && p[n] != '\0' && n + 1 < size) {
      out[n] = p[n];
      n++;
   }
   out[n] = '\0';
}

/* ---- fixture ------------------------------------------------------------------------- */
typedef struct tcase {
   int type; /* 0 parse, 1 check */
   char tag[64];
   char caption[256];
   int parse_ok;
   sw_spec_t spec;
   int pass;
   double score;
   int ncon, fmask, ndets;
   sw_det_t dets[255];
   int w, h;
   uint8_t *rgb; /* w * h * 3 */
} tcase_t;

typedef struct reader {
   const uint8_t *p, *end;
   int bad;
} reader_t;

static unsigned rd(reader_t *r, int bytes) {
   if (r->end - r->p < bytes) {
      r->bad = 1;
      return 0;
   }
   unsigned v = 0;
   for (int i = 0; i < bytes; i++)
      v |= (unsigned)r->p[i] << (8 * i);
   r->p += bytes;
   return v;
}
static int rd_i8(reader_t *r) {
   const unsigned v = rd(r, 1);
   return v >= 128 ? (int)v - 256 : (int)v;
}
static void rd_str(reader_t *r, int lenbytes, char *out, size_t size) {
   const unsigned n = rd(r, lenbytes);
   if (r->bad || (size_t)(r->end - r->p) < n || n >= size) {
      r->bad = 1;
      out[0] = '\0';
      return;
   }
   memcpy(out, r->p, n);
   out[n] = '\0';
   r->p += n;
}

static tcase_t *load_cases(const char *path, int *count) {
   FILE *f = fopen(path, "rb");
   if (f == NULL)
      return NULL;
   fseek(f, 0, SEEK_END);
   const long size = ftell(f);
   fseek(f, 0, SEEK_SET);
   uint8_t *data = malloc((size_t)size);
   if (data == NULL || fread(data, 1, (size_t)size, f) != (size_t)size) {
      fclose(f);
      free(data);
      return NULL;
   }
   fclose(f);
   reader_t r = {data, data + size, 0};
   if (size < 12 || memcmp(data, "SHVCASE2", 8) != 0) {
      free(data);
      return NULL;
   }
   r.p += 8;
   const int n = (int)rd(&r, 4);
   tcase_t *cases = calloc((size_t)n, sizeof *cases);
   for (int i = 0; i < n && !r.bad; i++) {
      tcase_t *c = &cases[i];
      c->type = (int)rd(&r, 1);
      rd_str(&r, 1, c->tag, sizeof c->tag);
      rd_str(&r, 2, c->caption, sizeof c->caption);
      if (c->type == 0) {
         c->parse_ok = (int)rd(&r, 1);
         c->spec.relation = -1;
         if (c->parse_ok) {
            c->spec.ngroups = (int)rd(&r, 1);
            for (int g = 0; g < c->spec.ngroups && g < 2; g++) {
               c->spec.groups[g].shape = (int)rd(&r, 1);
               c->spec.groups[g].colour = rd_i8(&r);
               c->spec.groups[g].count = (int)rd(&r, 1);
               c->spec.groups[g].exact = (int)rd(&r, 1);
            }
            c->spec.relation = rd_i8(&r);
         }
         continue;
      }
      c->pass = (int)rd(&r, 1);
      uint64_t bits = 0;
      for (int k = 0; k < 8; k++)
         bits |= (uint64_t)rd(&r, 1) << (8 * k);
      memcpy(&c->score, &bits, sizeof c->score);
      c->ncon = (int)rd(&r, 1);
      c->fmask = (int)rd(&r, 1);
      c->ndets = (int)rd(&r, 1);
      for (int k = 0; k < c->ndets; k++) {
         sw_det_t *d = &c->dets[k];
         d->colour = (int)rd(&r, 1);
         d->shape = rd_i8(&r);
         d->ncandidates = (int)rd(&r, 1);
         for (int j = 0; j < 3; j++)
            d->candidates[j] = (int)rd(&r, 1);
         d->area = (int)rd(&r, 2);
         for (int j = 0; j < 4; j++) {
            const int half = (int)rd(&r, 2);
            d->box[j] = (half >= 32768 ? half - 65536 : half) / 2.0;
         }
         uint64_t fbits = 0;
         for (int j = 0; j < 8; j++)
            fbits |= (uint64_t)rd(&r, 1) << (8 * j);
         memcpy(&d->fit, &fbits, sizeof d->fit);
      }
      const int enc = (int)rd(&r, 1);
      c->w = (int)rd(&r, 2);
      c->h = (int)rd(&r, 2);
      const size_t npix = (size_t)c->w * (size_t)c->h;
      c->rgb = malloc(npix * 3 + 1);
      if (enc == 0) {
         const unsigned runs = rd(&r, 4);
         size_t at = 0;
         for (unsigned k = 0; k < runs && !r.bad; k++) {
            const unsigned len = rd(&r, 1), label = rd(&r, 1);
            for (unsigned j = 0; j < len && at < npix && label <= 4; j++, at++)
               memcpy(c->rgb + at * 3, sw_palette[label], 3);
         }
         if (at != npix)
            r.bad = 1;
      } else {
         if ((size_t)(r.end - r.p) < npix * 3) {
            r.bad = 1;
         } else {
            memcpy(c->rgb, r.p, npix * 3);
            r.p += npix * 3;
         }
      }
   }
   free(data);
   if (r.bad) {
      fprintf(stderr, "%s: truncated or malformed\n", path);
      free(cases);
      return NULL;
   }
   *count = n;
   return cases;
}

static sw_image_t image_of(const tcase_t *c) {
   sw_image_t img = {(uint32_t)c->w, (uint32_t)c->h, (uint32_t)c->w * 3, c->rgb};
   return img;
}

static int spec_equal(const sw_spec_t *a, const sw_spec_t *b) {
   if (a->ngroups != b->ngroups || a->relation != b->relation)
      return 0;
   for (int g = 0; g < a->ngroups; g++)
      if (a->groups[g].shape != b->groups[g].shape || a->groups[g].colour != b->groups[g].colour ||
          a->groups[g].count != b->groups[g].count || a->groups[g].exact != b->groups[g].exact)
         return 0;
   return 1;
}

/* ---- 1. agreement with world.py ------------------------------------------------------- */
static void test_agreement(tcase_t *cases, int n) {
   int agree = 0, checks = 0, truth = 0, truth_pass = 0, pagree = 0, parses = 0;
   int model = 0, model_agree = 0, noisy = 0, noisy_agree = 0;
   /* the yardstick: [blur 0.9, 1.2][category 0..5, 6 = all][pos, pos passed, neg, neg passed] */
   static const char *const cats[6] = {"single_object", "two_object", "counting", "colors",
                                       "position", "color_attr"};
   int yard[2][7][4] = {{{0}}};
   for (int i = 0; i < n; i++) {
      tcase_t *c = &cases[i];
      if (c->type == 0) {
         sw_spec_t spec;
         char err[512];
         const int ok = sw_parse(c->caption, &spec, err, sizeof err) == 0;
         int good = ok == c->parse_ok && (!ok || spec_equal(&spec, &c->spec)) &&
                    (ok || err[0] != '\0');
         if (ok) {
            char canon[80];
            sw_spec_t again;
            sw_spec_caption(&spec, canon, sizeof canon);
            good = good && sw_parse(canon, &again, err, sizeof err) == 0 &&
                   spec_equal(&spec, &again);
         }
         parses++;
         pagree += good;
         expect(good, "parse [%s] \"%s\": python %s, C %s (%s)", c->tag, c->caption,
                c->parse_ok ? "accepts" : "refuses", ok ? "accepts" : "refuses",
                ok ? "" : err);
         continue;
      }
      sw_spec_t spec;
      char err[512];
      if (sw_parse(c->caption, &spec, err, sizeof err) != 0) {
         expect(0, "check case %d: C refuses \"%s\": %s", i, c->caption, err);
         continue;
      }
      const sw_image_t img = image_of(c);
      sw_check_t r;
      if (sw_check(&img, &spec, &r) != 0) {
         expect(0, "out of memory");
         continue;
      }
      int fmask = 0;
      for (int k = 0; k < r.nconstraints; k++)
         if (!r.c[k].ok)
            fmask |= 1 << k;
      int good = r.pass == c->pass && r.score == c->score && r.nconstraints == c->ncon &&
                 fmask == c->fmask && r.ndets == c->ndets;
      for (int k = 0; good && k < r.ndets; k++)
         good = r.dets[k].colour == c->dets[k].colour && r.dets[k].shape == c->dets[k].shape &&
                r.dets[k].area == c->dets[k].area && r.dets[k].fit == c->dets[k].fit &&
                r.dets[k].ncandidates == c->dets[k].ncandidates &&
                memcmp(r.dets[k].candidates, c->dets[k].candidates,
                       (size_t)r.dets[k].ncandidates * sizeof(int)) == 0 &&
                memcmp(r.dets[k].box, c->dets[k].box, sizeof r.dets[k].box) == 0;
      checks++;
      agree += good;
      if (strncmp(c->tag, "truth/", 6) == 0) {
         truth++;
         truth_pass += r.pass;
      }
      if (strncmp(c->tag, "model", 5) == 0) {
         model++;
         model_agree += good;
      }
      if (strncmp(c->tag, "yard", 4) == 0) {
         const int b = strncmp(c->tag + 4, "0.9", 3) == 0 ? 0 : 1;
         const char *sign = strpbrk(c->tag, "+-");
         const int positive = sign != NULL && *sign == '+';
         for (int k = 0; k < 6; k++)
            if (sign != NULL && strcmp(sign + 2, cats[k]) == 0) {
               const int at[2] = {k, 6}; /* its category and all */
               for (int j = 0; j < 2; j++) {
                  yard[b][at[j]][positive ? 0 : 2]++;
                  yard[b][at[j]][positive ? 1 : 3] += r.pass;
               }
            }
      }
      if (strcmp(c->tag, "noisy") == 0 || strcmp(c->tag, "ties") == 0) {
         noisy++;
         noisy_agree += good;
      }
      expect(good, "check case %d [%s] \"%s\": python pass=%d score=%.4f mask=%d dets=%d; C "
                   "pass=%d score=%.4f mask=%d dets=%d", i, c->tag, c->caption, c->pass,
             c->score, c->fmask, c->ndets, r.pass, r.score, fmask, r.ndets);
      sw_check_free(&r);
   }
   printf("agreement with world.py check: %d/%d images (noisy/ties %d/%d, model samples "
          "%d/%d); parse: %d/%d captions\n", agree, checks, noisy_agree, noisy, model_agree,
          model, pagree, parses);
   printf("C checker accuracy on ground-truth renders: %d/%d = %.4f\n", truth_pass, truth,
          truth ? (double)truth_pass / truth : 0.0);
   expect(truth > 0 && truth_pass == truth, "all ground-truth renders pass");
   /* the yardstick's floors: at blur 0.9 (noise 8) recall >= 97% on correct scenes and at
    * most 1% false passes on wrong ones; at 1.2 recall >= 90%, false passes <= 1% */
   static const double blurs[2] = {0.9, 1.2}, min_recall[2] = {0.97, 0.90};
   for (int b = 0; b < 2; b++) {
      printf("yardstick blur %.1f (recall / false pass):", blurs[b]);
      for (int k = 0; k <= 6; k++) {
         const int *y = yard[b][k];
         printf(" %s %.3f/%.3f", k < 6 ? cats[k] : "overall", y[0] ? (double)y[1] / y[0] : 0.0,
                y[2] ? (double)y[3] / y[2] : 0.0);
      }
      printf("\n");
      const int *all = yard[b][6];
      expect(all[0] > 0 && all[2] > 0 && all[1] >= min_recall[b] * all[0] &&
                 all[3] <= 0.01 * all[2],
             "yardstick at blur %.1f: recall %d/%d (floor %.2f), false passes %d/%d (ceiling 0.01)",
             blurs[b], all[1], all[0], min_recall[b], all[3], all[2]);
   }
}

/* ---- helpers: renders in C (world.render) and degradations -------------------------- */
typedef struct obj {
   int shape, colour, x0, y0, s;
} obj_t;

static void render(const obj_t *objs, int n, uint8_t *rgb) {
   memset(rgb, 0, 32 * 32 * 3);
   for (int k = 0; k < n; k++) {
      const obj_t *o = &objs[k];
      for (int y = 0; y < 32; y++)
         for (int x = 0; x < 32; x++) {
            const double px = x + 0.5, py = y + 0.5, s = o->s;
            int in = 0;
            if (o->shape == SW_SQUARE) {
               in = x >= o->x0 && x < o->x0 + o->s && y >= o->y0 && y < o->y0 + o->s;
            } else if (o->shape == SW_CIRCLE) {
               const double cx = o->x0 + s / 2, cy = o->y0 + s / 2, rr = s / 2;
               in = (px - cx) * (px - cx) + (py - cy) * (py - cy) <= rr * rr;
            } else {
               const double ax = o->x0 + s / 2, ay = o->y0, by = o->y0 + s;
               const double half = (py - ay) / s * (s / 2);
               in = py >= ay && py <= by && fabs(px - ax) <= half;
            }
            if (in)
               memcpy(rgb + (y * 32 + x) * 3, sw_palette[o->colour + 1], 3);
         }
   }
}

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
   uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
   z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
   z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
   return z ^ (z >> 31);
}
static double rng_unit(uint64_t *s) {
   return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}
static double rng_normal(uint64_t *s) {
   const double u1 = rng_unit(s) + 1e-12, u2 = rng_unit(s);
   return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}
static uint8_t clamp8(double v) {
   v = floor(v + 0.5);
   return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}
static void add_noise(const uint8_t *in, uint8_t *out, size_t npix, double sigma, uint64_t seed) {
   for (size_t i = 0; i < npix * 3; i++)
      out[i] = clamp8(in[i] + sigma * rng_normal(&seed));
}
static void blur(const uint8_t *in, uint8_t *out, int w, int h, double sigma) {
   if (sigma <= 0) {
      memcpy(out, in, (size_t)w * h * 3);
      return;
   }
   const int r = (int)ceil(3 * sigma);
   double k[64], sum = 0;
   for (int i = -r; i <= r; i++)
      sum += k[i + r] = exp(-0.5 * (i / sigma) * (i / sigma));
   double *tmp = malloc((size_t)w * h * 3 * sizeof *tmp);
   for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++)
         for (int c = 0; c < 3; c++) {
            double v = 0;
            for (int i = -r; i <= r; i++) {
               int xx = x + i < 0 ? 0 : x + i >= w ? w - 1 : x + i;
               v += k[i + r] / sum * in[(y * w + xx) * 3 + c];
            }
            tmp[(y * w + x) * 3 + c] = v;
         }
   for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++)
         for (int c = 0; c < 3; c++) {
            double v = 0;
            for (int i = -r; i <= r; i++) {
               int yy = y + i < 0 ? 0 : y + i >= h ? h - 1 : y + i;
               v += k[i + r] / sum * tmp[(yy * w + x) * 3 + c];
            }
            out[(y * w + x) * 3 + c] = clamp8(v);
         }
   free(tmp);
}
/* n smears: short random strokes of colours halfway between two palette entries */
static void add_smears(const uint8_t *in, uint8_t *out, int w, int h, int n, uint64_t seed) {
   memcpy(out, in, (size_t)w * h * 3);
   for (int k = 0; k < n; k++) {
      const int a = (int)(rng_next(&seed) % 5), b = (int)(rng_next(&seed) % 5);
      uint8_t col[3];
      for (int c = 0; c < 3; c++)
         col[c] = (uint8_t)((sw_palette[a][c] + sw_palette[b == a ? (a + 1) % 5 : b][c]) / 2);
      int x = (int)(rng_next(&seed) % (uint64_t)w), y = (int)(rng_next(&seed) % (uint64_t)h);
      const int len = 3 + (int)(rng_next(&seed) % 6);
      const int dx = (int)(rng_next(&seed) % 3) - 1, dy = (int)(rng_next(&seed) % 3) - 1;
      for (int s = 0; s < len; s++) {
         if (x >= 0 && x < w && y >= 0 && y < h)
            memcpy(out + (y * w + x) * 3, col, 3);
         x += dx == 0 && dy == 0 ? 1 : dx;
         y += dy;
      }
   }
}

/* world.py validate_checker in C: random specs of the six categories (world.sample_spec's
 * distribution), scenes placed like world.scene_from_spec (sides 7..12 for <= 2 objects,
 * 7..10 otherwise, boxes 2 pixels apart, relations with |offset axis| / |offset| >= 0.8),
 * rendered like world.render; every scene must pass the checker. */
static int boxes_clear(const obj_t *objs, int n, int x0, int y0, int s) {
   for (int k = 0; k < n; k++)
      if (x0 < objs[k].x0 + objs[k].s + 2 && objs[k].x0 < x0 + s + 2 &&
          y0 < objs[k].y0 + objs[k].s + 2 && objs[k].y0 < y0 + s + 2)
         return 0;
   return 1;
}

static void test_validate_renders(int count) {
   uint64_t seed = 12345;
   int per_cat[6][2] = {{0}};
   static const char *const cats[6] = {"single_object", "two_object", "counting", "colors",
                                       "position", "color_attr"};
   uint8_t rgb[32 * 32 * 3];
   for (int it = 0; it < count; it++) {
      const int cat = it % 6;
      sw_spec_t spec;
      memset(&spec, 0, sizeof spec);
      spec.relation = -1;
      const int s0 = (int)(rng_next(&seed) % 3), s1 = (s0 + 1 + (int)(rng_next(&seed) % 2)) % 3;
      const int c0 = (int)(rng_next(&seed) % 4), c1 = (c0 + 1 + (int)(rng_next(&seed) % 3)) % 4;
      sw_group_t a = {s0, -1, 1, 0}, b = {s1, -1, 1, 0};
      spec.ngroups = 1;
      if (cat == 3) {
         a.colour = c0;
      } else if (cat == 2) {
         a.count = 1 + (int)(rng_next(&seed) % 4);
         a.exact = 1;
         a.colour = rng_next(&seed) % 2 ? c0 : -1;
      } else if (cat == 1 || cat == 4 || cat == 5) {
         spec.ngroups = 2;
         if (cat == 5 || (cat == 4 && rng_next(&seed) % 2)) {
            a.colour = c0;
            b.colour = c1;
            if (cat == 4)
               b.shape = (int)(rng_next(&seed) % 3); /* coloured position: any shapes */
         }
         if (cat == 4)
            spec.relation = (int)(rng_next(&seed) % 4);
      }
      spec.groups[0] = a;
      spec.groups[1] = b;
      obj_t objs[4];
      int n = 0, placed = 0;
      for (int attempt = 0; attempt < 200 && !placed; attempt++) {
         n = 0;
         const int total = a.count + (spec.ngroups == 2 ? 1 : 0);
         const int smax = total <= 2 ? 12 : 10;
         int ok = 1;
         for (int g = 0; g < spec.ngroups && ok; g++)
            for (int k = 0; k < spec.groups[g].count && ok; k++) {
               int done = 0;
               for (int t = 0; t < 50 && !done; t++) {
                  const int sz = 7 + (int)(rng_next(&seed) % (uint64_t)(smax - 6));
                  const int x0 = (int)(rng_next(&seed) % (uint64_t)(32 - sz + 1));
                  const int y0 = (int)(rng_next(&seed) % (uint64_t)(32 - sz + 1));
                  if (boxes_clear(objs, n, x0, y0, sz)) {
                     const int colour = spec.groups[g].colour >= 0 ? spec.groups[g].colour
                                                                  : (int)(rng_next(&seed) % 4);
                     objs[n++] = (obj_t){spec.groups[g].shape, colour, x0, y0, sz};
                     done = 1;
                  }
               }
               ok = done;
            }
         if (!ok)
            continue;
         if (spec.relation >= 0) {
            const double ba[4] = {objs[0].x0, objs[0].y0, objs[0].x0 + objs[0].s, objs[0].y0 + objs[0].s};
            const double bb[4] = {objs[1].x0, objs[1].y0, objs[1].x0 + objs[1].s, objs[1].y0 + objs[1].s};
            if (!(sw_relations(ba, bb) & (1u << spec.relation)))
               continue;
            const double ox = (ba[0] + ba[2]) / 2.0 - (bb[0] + bb[2]) / 2.0;
            const double oy = (ba[1] + ba[3]) / 2.0 - (bb[1] + bb[3]) / 2.0;
            const double axis = spec.relation <= SW_RIGHT_OF ? fabs(ox) : fabs(oy);
            if (axis / sqrt(ox * ox + oy * oy) < 0.8)
               continue;
         }
         placed = 1;
      }
      if (!placed)
         continue;
      render(objs, n, rgb);
      sw_image_t img = {32, 32, 96, rgb};
      sw_check_t r;
      if (sw_check(&img, &spec, &r) != 0)
         continue;
      per_cat[cat][0] += r.pass;
      per_cat[cat][1]++;
      if (!r.pass) {
         char cap[80];
         sw_spec_caption(&spec, cap, sizeof cap);
         expect(0, "render of \"%s\" does not pass", cap);
      }
      sw_check_free(&r);
   }
   int ok = 0, all = 0;
   printf("C checker on %d C-rendered scenes (validate_checker):", count);
   for (int c = 0; c < 6; c++) {
      printf(" %s %d/%d", cats[c], per_cat[c][0], per_cat[c][1]);
      ok += per_cat[c][0];
      all += per_cat[c][1];
   }
   printf("; overall %.4f\n", all ? (double)ok / all : 0.0);
   expect(all > count * 9 / 10 && ok == all, "every C-rendered scene passes");
}

/* ---- 2. quality ------------------------------------------------------------------------ */
static double quality_of(const uint8_t *rgb, int w, int h, sw_quality_t *q) {
   sw_image_t img = {(uint32_t)w, (uint32_t)h, (uint32_t)w * 3, rgb};
   sw_quality_t local;
   if (q == NULL)
      q = &local;
   if (sw_quality(&img, q) != 0)
      return -1;
   return q->score;
}

static void test_quality(tcase_t *cases, int n) {
   int renders = 0, high = 0;
   double min_render = 1;
   enum { LEVELS = 6 };
   static const double noise_levels[LEVELS] = {0, 8, 16, 32, 48, 64};
   static const double blur_levels[LEVELS] = {0, 0.5, 0.8, 1.2, 1.6, 2.2};
   static const int smear_levels[LEVELS] = {0, 2, 4, 8, 16, 32};
   double mean[3][LEVELS] = {{0}};
   int mono[3] = {0, 0, 0}, used = 0;
   uint8_t *tmp = malloc(32 * 32 * 3);
   for (int i = 0; i < n; i++) {
      const tcase_t *c = &cases[i];
      if (c->type != 1 || strncmp(c->tag, "truth/", 6) != 0)
         continue;
      const double q0 = quality_of(c->rgb, c->w, c->h, NULL);
      renders++;
      high += q0 > 0.9;
      if (q0 < min_render)
         min_render = q0;
      if (used >= 120)
         continue;
      used++;
      for (int kind = 0; kind < 3; kind++) {
         double prev = 2;
         int ok = 1;
         for (int l = 0; l < LEVELS; l++) {
            if (kind == 0)
               add_noise(c->rgb, tmp, 32 * 32, noise_levels[l], 1000u + (uint64_t)i);
            else if (kind == 1)
               blur(c->rgb, tmp, 32, 32, blur_levels[l]);
            else
               add_smears(c->rgb, tmp, 32, 32, smear_levels[l], 77u + (uint64_t)i);
            const double q = quality_of(tmp, 32, 32, NULL);
            mean[kind][l] += q;
            if (l > 0 && q > prev + 1e-12)
               ok = 0;
            prev = q;
         }
         mono[kind] += ok;
      }
   }
   free(tmp);
   printf("quality: %d/%d ground-truth renders score > 0.9 (min %.4f)\n", high, renders,
          min_render);
   expect(renders > 0 && high == renders, "quality > 0.9 on every render");
   static const char *const names[3] = {"noise sigma", "blur sigma", "smear strokes"};
   for (int kind = 0; kind < 3; kind++) {
      printf("quality vs %-13s:", names[kind]);
      int decreasing = 1;
      for (int l = 0; l < LEVELS; l++) {
         mean[kind][l] /= used;
         const double level = kind == 0 ? noise_levels[l] : kind == 1 ? blur_levels[l]
                                                                      : smear_levels[l];
         printf("  %g: %.3f", level, mean[kind][l]);
         if (l > 0 && !(mean[kind][l] < mean[kind][l - 1]))
            decreasing = 0;
      }
      printf("   (monotonic per image: %d/%d)\n", mono[kind], used);
      expect(decreasing, "mean quality strictly decreases with %s", names[kind]);
      expect(mean[kind][LEVELS - 1] < mean[kind][0] - 0.2,
             "the strongest %s lowers quality clearly (%.3f -> %.3f)", names[kind],
             mean[kind][0], mean[kind][LEVELS - 1]);
      expect(mono[kind] >= used * 9 / 10, "quality monotonic in %s for >= 90%% of images",
             names[kind]);
   }
   /* model-like images in the fixture (noisy renders) score lower than renders */
   double noisy_sum = 0;
   int noisy_n = 0;
   for (int i = 0; i < n; i++)
      if (cases[i].type == 1 && strcmp(cases[i].tag, "noisy") == 0) {
         noisy_sum += quality_of(cases[i].rgb, cases[i].w, cases[i].h, NULL);
         noisy_n++;
      }
   if (noisy_n > 0)
      printf("quality: mean over the %d noisy fixture images %.3f\n", noisy_n,
             noisy_sum / noisy_n);
   double model_sum[2] = {0, 0};
   int model_n[2] = {0, 0};
   for (int i = 0; i < n; i++)
      if (cases[i].type == 1 && strncmp(cases[i].tag, "model", 5) == 0) {
         model_sum[cases[i].pass] += quality_of(cases[i].rgb, cases[i].w, cases[i].h, NULL);
         model_n[cases[i].pass]++;
      }
   if (model_n[0] + model_n[1] > 0)
      printf("quality: model samples, mean %.3f over %d passing, %.3f over %d failing\n",
             model_n[1] ? model_sum[1] / model_n[1] : 0.0, model_n[1],
             model_n[0] ? model_sum[0] / model_n[0] : 0.0, model_n[0]);
   /* an empty image and a speckle field score low */
   uint8_t img[32 * 32 * 3] = {0};
   expect(quality_of(img, 32, 32, NULL) < 0.5, "an empty image scores < 0.5");
   uint64_t seed = 5;
   for (int k = 0; k < 40; k++) {
      const int at = (int)(rng_next(&seed) % 1024);
      memcpy(img + at * 3, sw_palette[1 + rng_next(&seed) % 4], 3);
   }
   sw_quality_t q;
   expect(quality_of(img, 32, 32, &q) < 0.5, "a field of single-pixel speckles scores < 0.5 "
          "(got %.3f)", q.score);
   sw_buf_t b;
   sw_buf_init(&b);
   sw_quality_json(&q, &b);
   expect(json_valid(b.data), "quality details are valid JSON: %s", b.data);
   sw_buf_free(&b);
}

/* ---- 3. reflector ------------------------------------------------------------------------ */
static void reflect_on(const char *caption, const obj_t *objs, int nobj, long round,
                       char *json_out, size_t size) {
   uint8_t rgb[32 * 32 * 3];
   render(objs, nobj, rgb);
   sw_spec_t spec;
   char err[256];
   json_out[0] = '\0';
   if (sw_parse(caption, &spec, err, sizeof err) != 0)
      return;
   sw_image_t img = {32, 32, 96, rgb};
   sw_check_t r;
   if (sw_check(&img, &spec, &r) != 0)
      return;
   sw_buf_t b;
   sw_buf_init(&b);
   sw_reflect_json(&spec, &r, round, &b);
   snprintf(json_out, size, "%s", b.data ? b.data : "");
   sw_buf_free(&b);
   sw_check_free(&r);
}

static void expect_reflection(const char *caption, const obj_t *objs, int nobj,
                              const char *feedback, const char *negative) {
   char json[1024], fb[512], neg[256];
   reflect_on(caption, objs, nobj, 1, json, sizeof json);
   json_get(json, "feedback", fb, sizeof fb);
   json_get(json, "negative_prompt", neg, sizeof neg);
   expect(json_valid(json) && strcmp(fb, feedback) == 0 && strcmp(neg, negative) == 0,
          "reflect \"%s\": want feedback \"%s\" negative \"%s\", got %s", caption, feedback,
          negative, json);
}

static void test_reflector(tcase_t *cases, int n) {
   const obj_t rc1 = {SW_CIRCLE, SW_RED, 2, 2, 9}, rc2 = {SW_CIRCLE, SW_RED, 20, 2, 9},
               rc3 = {SW_CIRCLE, SW_RED, 2, 20, 9};
   const obj_t bsq_right = {SW_SQUARE, SW_BLUE, 20, 12, 9},
               bsq_left = {SW_SQUARE, SW_BLUE, 2, 12, 9};
   const obj_t rc_right = {SW_CIRCLE, SW_RED, 20, 12, 9};
   {
      obj_t o[2] = {rc1, bsq_right};
      expect_reflection("two red circles", o, 2, "Add one more red circle.", "");
   }
   {
      obj_t o[3] = {rc1, rc2, rc3};
      expect_reflection("two red circles", o, 3, "Remove the extra red circle.",
                        "three red circles");
      expect_reflection("a red circle", o, 3, "The image matches the prompt.", "");
      /* unrelated extra objects are not penalised (world.py): only one is recoloured */
      expect_reflection("one blue circle", o, 3, "Make one red circle blue.", "a red circle");
   }
   {
      obj_t o[1] = {{SW_TRIANGLE, SW_BLUE, 10, 10, 10}};
      expect_reflection("a yellow triangle", o, 1, "Make the blue triangle yellow.",
                        "a blue triangle");
      expect_reflection("a triangle", o, 1, "The image matches the prompt.", "");
      expect_reflection("a yellow square", o, 1, "Add a yellow square.", "");
      expect_reflection("a blue square", o, 1, "Turn the blue triangle into a square.",
                        "a blue triangle");
   }
   {
      obj_t o[2] = {rc_right, bsq_left};
      expect_reflection("a red circle left of a blue square", o, 2,
                        "Move the red circle to the left of the blue square.",
                        "a blue square left of a red circle");
      obj_t p[2] = {{SW_CIRCLE, SW_RED, 12, 20, 9}, {SW_SQUARE, SW_BLUE, 12, 2, 9}};
      expect_reflection("a red circle above a blue square", p, 2,
                        "Move the red circle above the blue square.",
                        "a blue square above a red circle");
      expect_reflection("a red circle left of a blue square", p, 2,
                        "Move the red circle to the left of the blue square.",
                        "a red circle below a blue square");
      obj_t q[1] = {bsq_left};
      expect_reflection("a red circle left of a blue square", q, 1,
                        "Add a red circle. Place the red circle to the left of the blue square.",
                        "");
      obj_t r[2] = {{SW_CIRCLE, SW_GREEN, 2, 12, 9}, bsq_right};
      expect_reflection("a red circle left of a blue square", r, 2,
                        "Make the green circle red. Place the red circle to the left of the "
                        "blue square.", "a green circle");
   }
   {
      obj_t o[2] = {{SW_SQUARE, SW_BLUE, 2, 2, 9}, {SW_TRIANGLE, SW_RED, 20, 20, 9}};
      expect_reflection("a red square and a blue triangle", o, 2,
                        "Make the blue square red. Make the red triangle blue.",
                        "a blue square and a red triangle");
      expect_reflection("four green circles", o, 2, "Add four green circles.", "");
      expect_reflection("", o, 2, "The image matches the prompt.", "");
   }
   {
      obj_t o[3] = {{SW_TRIANGLE, SW_GREEN, 2, 2, 9}, {SW_TRIANGLE, SW_GREEN, 20, 2, 9},
                    {SW_CIRCLE, SW_YELLOW, 2, 20, 9}};
      expect_reflection("a circle and a square", o, 3, "Turn one green triangle into a square.",
                        "a green triangle");
      expect_reflection("three squares", o, 3, "Turn two green triangles into squares. Turn the "
                        "yellow circle into a square.", "a green triangle and a yellow circle");
      expect_reflection("a red circle and a square", o, 3, "Make the yellow circle red. Turn one "
                        "green triangle into a square.", "a yellow circle and a green triangle");
   }
   {
      obj_t o[2] = {{SW_SQUARE, SW_GREEN, 2, 2, 9}, {SW_TRIANGLE, SW_YELLOW, 20, 20, 9}};
      expect_reflection("a red circle and a blue triangle", o, 2,
                        "Add a red circle. Make the yellow triangle blue.",
                        "a yellow triangle");
   }
   /* round from history and revised prompts */
   {
      obj_t o[3] = {rc1, rc2, rc3};
      char json[1024], rev[128];
      reflect_on("a red circle", o, 3, 3, json, sizeof json);
      json_get(json, "revised_prompt", rev, sizeof rev);
      expect(strstr(json, "\"round\":3") != NULL && strcmp(rev, "one red circle") == 0,
             "round and revised prompt: %s", json);
   }
   /* every fixture image: valid JSON, prompts that parse, pass <-> "matches" */
   int total = 0, good = 0, with_neg = 0;
   for (int i = 0; i < n; i++) {
      const tcase_t *c = &cases[i];
      if (c->type != 1)
         continue;
      sw_spec_t spec;
      char err[256];
      if (sw_parse(c->caption, &spec, err, sizeof err) != 0)
         continue;
      const sw_image_t img = image_of(c);
      sw_check_t r;
      if (sw_check(&img, &spec, &r) != 0)
         continue;
      sw_buf_t b;
      sw_buf_init(&b);
      sw_reflect_json(&spec, &r, 1, &b);
      char fb[1024], neg[256], rev[256];
      json_get(b.data, "feedback", fb, sizeof fb);
      json_get(b.data, "negative_prompt", neg, sizeof neg);
      json_get(b.data, "revised_prompt", rev, sizeof rev);
      sw_spec_t tmp;
      int ok = json_valid(b.data) && sw_parse(rev, &tmp, err, sizeof err) == 0 &&
               (neg[0] == '\0' || sw_parse(neg, &tmp, err, sizeof err) == 0);
      if (r.pass)
         ok = ok && strcmp(fb, "The image matches the prompt.") == 0 && neg[0] == '\0';
      else
         ok = ok && fb[0] != '\0' && strcmp(fb, "The image matches the prompt.") != 0;
      /* known defects produce the matching kind of instruction */
      if (!r.pass && strncmp(c->tag, "swapped/", 8) == 0)
         ok = ok && (strstr(fb, "Move the") != NULL);
      if (!r.pass && strncmp(c->tag, "missing/", 8) == 0)
         ok = ok && (strstr(fb, "Add ") != NULL || strstr(fb, "Make the") != NULL ||
                     strstr(fb, "Turn the") != NULL);
      if (!r.pass && strncmp(c->tag, "wrong-colour/colors", 19) == 0)
         ok = ok && strstr(fb, "Make the") != NULL;
      if (getenv("SHV_SHOW") != NULL && strstr(c->tag, getenv("SHV_SHOW")) != NULL)
         printf("[%s] \"%s\" -> %s\n", c->tag, c->caption, b.data);
      with_neg += neg[0] != '\0';
      total++;
      good += ok;
      expect(ok, "reflection of case %d [%s] \"%s\": %s", i, c->tag, c->caption, b.data);
      sw_buf_free(&b);
      sw_check_free(&r);
   }
   printf("reflector: %d/%d fixture images give valid reflections (%d with a negative "
          "prompt)\n", good, total, with_neg);
}

/* ---- 4. the plugins through the ABI ------------------------------------------------------ */
typedef struct fake_call_data {
   char error[1024];
} fake_call_data_t;

static void host_log(const assay_host_t *host, const assay_call_t *call, assay_log_level_t level,
                     const char *message) {
   (void)host;
   (void)call;
   (void)level;
   (void)message;
}
static bool host_cancelled(const assay_host_t *host, const assay_call_t *call) {
   (void)host;
   (void)call;
   return false;
}
static void host_report(const assay_host_t *host, const assay_call_t *call, const char *message) {
   (void)host;
   if (call != NULL && call->host_data != NULL)
      snprintf(((fake_call_data_t *)call->host_data)->error, 1024, "%s", message);
}
static const void *host_ext(const assay_host_t *host, const char *id) {
   (void)host;
   (void)id;
   return NULL;
}
static const assay_host_t fake_host = {ASSAY_VERSION_INIT, NULL, "test", "0", host_ext,
                                       host_log, host_cancelled, host_report};

#define MAX_TEXTS 4096
typedef struct texts {
   char *items[MAX_TEXTS];
} texts_t;
static void text_set(const assay_text_out_t *out, uint32_t index, const char *utf8) {
   texts_t *t = out->host_data;
   if (index < MAX_TEXTS) {
      free(t->items[index]);
      t->items[index] = strdup(utf8);
   }
}
static void texts_free(texts_t *t) {
   for (int i = 0; i < MAX_TEXTS; i++) {
      free(t->items[i]);
      t->items[i] = NULL;
   }
}

typedef struct loaded {
   void *handle;
   const assay_plugin_t *plugin;
   const void *ext;
} loaded_t;

static int load_plugin(const char *dir, const char *id, const char *ext_id, loaded_t *out) {
   char path[1024];
   snprintf(path, sizeof path, "%s/%s.so", dir, id);
   out->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
   if (out->handle == NULL) {
      printf("dlopen %s: %s\n", path, dlerror());
      return -1;
   }
   const assay_plugin_entry_t *entry = dlsym(out->handle, ASSAY_ENTRY_SYMBOL);
   if (entry == NULL || entry->abi_version.major != ASSAY_VERSION_MAJOR || !entry->init(path))
      return -1;
   const assay_plugin_factory_t *factory = entry->get_factory(ASSAY_PLUGIN_FACTORY_ID);
   if (factory == NULL || factory->get_plugin_count(factory) != 1)
      return -1;
   const assay_plugin_descriptor_t *d = factory->get_plugin_descriptor(factory, 0);
   if (d == NULL || strcmp(d->id, id) != 0 || d->name == NULL || d->version == NULL ||
       d->description == NULL)
      return -1;
   out->plugin = factory->create_plugin(factory, &fake_host, id);
   if (out->plugin == NULL)
      return -1;
   assay_options_t none = {0, NULL};
   if (out->plugin->init(out->plugin, &none) != ASSAY_OK)
      return -1;
   out->ext = out->plugin->get_extension(out->plugin, ext_id);
   return out->ext != NULL ? 0 : -1;
}

typedef struct batch {
   const char *prompt;
   uint32_t n;
   assay_image_t *images;
   const tcase_t **cases;
} batch_t;

typedef struct thread_job {
   const assay_verifier_ext_t *ver;
   const assay_plugin_t *plugin;
   const batch_t *batches;
   int nbatches;
   double *scores; /* per batch, per image */
   int rc;
} thread_job_t;

static void *thread_main(void *arg) {
   thread_job_t *job = arg;
   size_t at = 0;
   for (int k = 0; k < job->nbatches; k++) {
      fake_call_data_t data = {{0}};
      assay_call_t call = {&fake_host, 1, &data};
      const assay_result_t rc = job->ver->score(job->plugin, &call, job->batches[k].prompt,
                                                job->batches[k].n, job->batches[k].images,
                                                job->scores + at, NULL);
      if (rc != ASSAY_OK)
         job->rc = rc;
      at += job->batches[k].n;
   }
   return NULL;
}

static void test_plugins(const char *dir, tcase_t *cases, int n) {
   loaded_t checker = {0}, quality = {0}, reflector = {0};
   const int ok_c = load_plugin(dir, "shapes-checker", ASSAY_EXT_VERIFIER, &checker) == 0;
   const int ok_q = load_plugin(dir, "shapes-quality", ASSAY_EXT_VERIFIER, &quality) == 0;
   const int ok_r = load_plugin(dir, "shapes-reflector", ASSAY_EXT_REFLECTOR, &reflector) == 0;
   expect(ok_c, "load shapes-checker from %s", dir);
   expect(ok_q, "load shapes-quality from %s", dir);
   expect(ok_r, "load shapes-reflector from %s", dir);
   if (!ok_c || !ok_q || !ok_r)
      return;
   const assay_verifier_ext_t *cv = checker.ext, *qv = quality.ext;
   const assay_reflector_ext_t *rv = reflector.ext;

   /* batches: consecutive check cases with the same caption */
   batch_t *batches = calloc((size_t)n, sizeof *batches);
   assay_image_t *images = calloc((size_t)n, sizeof *images);
   const tcase_t **order = calloc((size_t)n, sizeof *order);
   int nb = 0, ni = 0;
   for (int i = 0; i < n; i++) {
      const tcase_t *c = &cases[i];
      if (c->type != 1)
         continue;
      if (nb == 0 || strcmp(batches[nb - 1].prompt, c->caption) != 0 ||
          batches[nb - 1].n >= 8) {
         batches[nb].prompt = c->caption;
         batches[nb].images = &images[ni];
         batches[nb].cases = &order[ni];
         nb++;
      }
      images[ni].width = (uint32_t)c->w;
      images[ni].height = (uint32_t)c->h;
      images[ni].stride = (uint32_t)c->w * 3;
      images[ni].pixels = c->rgb;
      order[ni] = c;
      batches[nb - 1].n++;
      ni++;
   }
   double *scores = calloc((size_t)ni, sizeof *scores);
   double *qscores = calloc((size_t)ni, sizeof *qscores);
   texts_t *texts = calloc(1, sizeof *texts);
   int score_ok = 0, json_ok = 0, qjson_ok = 0, rjson_ok = 0, total = 0;
   size_t at = 0;
   for (int k = 0; k < nb; k++) {
      const batch_t *b = &batches[k];
      fake_call_data_t data = {{0}};
      assay_call_t call = {&fake_host, 1, &data};
      assay_text_out_t out = {texts, text_set};
      assay_result_t rc = cv->score(checker.plugin, &call, b->prompt, b->n, b->images,
                                    scores + at, &out);
      expect(rc == ASSAY_OK, "checker score \"%s\": rc %d %s", b->prompt, rc, data.error);
      for (uint32_t i = 0; i < b->n; i++) {
         total++;
         score_ok += scores[at + i] == b->cases[i]->score;
         const char *t = texts->items[i];
         const int pass_text = t != NULL && strstr(t, b->cases[i]->pass ? "\"pass\":true"
                                                                         : "\"pass\":false") != NULL;
         json_ok += json_valid(t) && pass_text;
      }
      texts_free(texts);
      rc = qv->score(quality.plugin, &call, b->prompt, b->n, b->images, qscores + at, &out);
      expect(rc == ASSAY_OK, "quality score: rc %d %s", rc, data.error);
      for (uint32_t i = 0; i < b->n; i++) {
         sw_image_t img = {b->images[i].width, b->images[i].height, b->images[i].stride,
                           b->images[i].pixels};
         sw_quality_t q;
         sw_quality(&img, &q);
         qjson_ok += json_valid(texts->items[i]) && q.score == qscores[at + i] &&
                     qscores[at + i] >= 0 && qscores[at + i] <= 1;
      }
      texts_free(texts);
      const char *hist[8] = {"[]", "[{\"feedback\":\"x, y\"}]", NULL, NULL, NULL, NULL, NULL,
                             NULL};
      rc = rv->reflect(reflector.plugin, &call, b->prompt, b->n, b->images, NULL, hist, &out);
      expect(rc == ASSAY_OK, "reflect: rc %d %s", rc, data.error);
      for (uint32_t i = 0; i < b->n; i++) {
         const char *t = texts->items[i];
         char want[32];
         snprintf(want, sizeof want, "\"round\":%d", i == 1 ? 2 : 1);
         rjson_ok += json_valid(t) && strstr(t, want) != NULL;
      }
      texts_free(texts);
      at += b->n;
   }
   printf("plugins: checker scores equal world.py's %d/%d, details valid %d/%d; quality "
          "%d/%d; reflector %d/%d\n", score_ok, total, json_ok, total, qjson_ok, total,
          rjson_ok, total);
   expect(score_ok == total, "plugin checker scores equal world.py's");
   expect(json_ok == total, "plugin checker details are valid JSON with the right pass");
   expect(qjson_ok == total, "plugin quality scores equal sw_quality, details valid JSON");
   expect(rjson_ok == total, "plugin reflections valid JSON with the history's round");

   /* errors */
   {
      fake_call_data_t data = {{0}};
      assay_call_t call = {&fake_host, 1, &data};
      double s[2];
      assay_result_t rc = cv->score(checker.plugin, &call, "a red hexagon", 1, images, s, NULL);
      printf("checker error for \"a red hexagon\": %s\n", data.error);
      expect(rc == ASSAY_ERR_INVALID_ARGUMENT &&
                strstr(data.error, "unknown word \"hexagon\"; shapes are circle, square, "
                                   "triangle") != NULL,
             "unknown shape refused with a reason: rc %d \"%s\"", rc, data.error);
      rc = cv->score(checker.plugin, &call, "a red disk", 1, images, s, NULL);
      expect(rc == ASSAY_ERR_INVALID_ARGUMENT && strstr(data.error, "\"disk\"") != NULL,
             "\"a red disk\" refused: %s", data.error);
      rc = cv->score(checker.plugin, &call, "two circles left of a square", 1, images, s, NULL);
      expect(rc == ASSAY_ERR_INVALID_ARGUMENT && strstr(data.error, "relation") != NULL,
             "counted relation refused: %s", data.error);
      rc = cv->score(checker.plugin, &call, "a purple circle", 1, images, s, NULL);
      expect(rc == ASSAY_ERR_INVALID_ARGUMENT &&
                strstr(data.error, "colours are red, green, blue, yellow") != NULL,
             "unknown colour refused: %s", data.error);
      assay_text_out_t out = {texts, text_set};
      rc = rv->reflect(reflector.plugin, &call, "a red hexagon", 1, images, NULL, NULL, &out);
      expect(rc == ASSAY_ERR_INVALID_ARGUMENT && strstr(data.error, "hexagon") != NULL,
             "reflector refuses the prompt: %s", data.error);
      rc = qv->score(quality.plugin, &call, "a red hexagon", 1, images, s, NULL);
      expect(rc == ASSAY_OK, "quality ignores the prompt");
      assay_image_t bad = images[0];
      bad.stride = 5;
      rc = cv->score(checker.plugin, &call, "a circle", 1, &bad, s, NULL);
      expect(rc == ASSAY_ERR_INVALID_ARGUMENT && strstr(data.error, "stride") != NULL,
             "malformed image refused: %s", data.error);
      rc = qv->score(quality.plugin, &call, "", 1, &bad, s, NULL);
      expect(rc == ASSAY_ERR_INVALID_ARGUMENT, "quality refuses a malformed image");
      rc = cv->score(checker.plugin, &call, "a circle", 0, NULL, NULL, NULL);
      expect(rc == ASSAY_OK, "zero images is fine");
      const char *badhist[1] = {"{}"};
      rc = rv->reflect(reflector.plugin, &call, "a circle", 1, images, NULL, badhist, &out);
      expect(rc == ASSAY_ERR_INVALID_ARGUMENT, "reflector refuses a history that is not an array");
      texts_free(texts);
   }
   /* strided images give the same scores */
   {
      int same = 0, count = 0;
      for (int i = 0; i < ni && count < 200; i++, count++) {
         const assay_image_t *src = &images[i];
         const uint32_t stride = src->width * 3 + 7;
         uint8_t *buf = malloc((size_t)stride * src->height);
         memset(buf, 0xab, (size_t)stride * src->height);
         for (uint32_t y = 0; y < src->height; y++)
            memcpy(buf + y * stride, src->pixels + y * src->stride, src->width * 3);
         assay_image_t img = {src->width, src->height, stride, buf};
         fake_call_data_t data = {{0}};
         assay_call_t call = {&fake_host, 1, &data};
         double s1 = -1, s2 = -1;
         cv->score(checker.plugin, &call, order[i]->caption, 1, &img, &s1, NULL);
         qv->score(quality.plugin, &call, "", 1, &img, &s2, NULL);
         same += s1 == scores[i] && s2 == qscores[i];
         free(buf);
      }
      expect(same == count, "strided images: %d/%d same scores", same, count);
   }
   /* 4 threads at once, each over all batches */
   {
      enum { THREADS = 4 };
      pthread_t th[THREADS];
      thread_job_t jobs[THREADS];
      for (int t = 0; t < THREADS; t++) {
         jobs[t].ver = t % 2 == 0 ? cv : qv;
         jobs[t].plugin = t % 2 == 0 ? checker.plugin : quality.plugin;
         jobs[t].batches = batches;
         jobs[t].nbatches = nb;
         jobs[t].scores = calloc((size_t)ni, sizeof(double));
         jobs[t].rc = 0;
         pthread_create(&th[t], NULL, thread_main, &jobs[t]);
      }
      int same = 1;
      for (int t = 0; t < THREADS; t++) {
         pthread_join(th[t], NULL);
         const double *want = t % 2 == 0 ? scores : qscores;
         same = same && jobs[t].rc == 0 && memcmp(jobs[t].scores, want, (size_t)ni * sizeof(double)) == 0;
         free(jobs[t].scores);
      }
      expect(same, "4 concurrent threads give identical scores");
   }
   free(texts);
   free(scores);
   free(qscores);
   free(batches);
   free(images);
   free(order);
   checker.plugin->destroy(checker.plugin);
   quality.plugin->destroy(quality.plugin);
   reflector.plugin->destroy(reflector.plugin);
}

/* ---- 5. the reflector on several views (assay.reflector-views.draft/1) -------------------- */
#define PREVIEW_BLUR 2.0 /* stand-in for the decoded x0-prediction: the checker still reads
                          * objects of side >= 7 at sigma 2 (ambiguous shapes from ~2.5) */

typedef struct views_ctx {
   const assay_plugin_t *plugin;
   const assay_reflector_ext_t *one;
   const assay_reflector_views_ext_t *views;
   texts_t *texts;
   fake_call_data_t data;
   assay_call_t call;
} views_ctx_t;

/* reflect_views on one candidate with images given as 32x32 RGB buffers (NULL name: the
 * view is skipped). Returns rc; the JSON is in ctx->texts->items[0]. */
static assay_result_t views_on(views_ctx_t *ctx, const char *prompt, uint32_t nviews,
                               const char *const *names, uint8_t *const *rgb) {
   assay_image_t imgs[8];
   for (uint32_t j = 0; j < nviews; j++) {
      imgs[j].width = imgs[j].height = 32;
      imgs[j].stride = 96;
      imgs[j].pixels = rgb[j];
   }
   texts_free(ctx->texts);
   ctx->data.error[0] = '\0';
   assay_text_out_t out = {ctx->texts, text_set};
   return ctx->views->reflect_views(ctx->plugin, &ctx->call, prompt, 1, nviews, names, imgs,
                                    NULL, NULL, &out);
}

/* `sketch` objects finished, `preview` objects blurred: the JSON of reflect_views on
 * ["preview","sketch"] in json (size 2048). */
static void views_scene(views_ctx_t *ctx, const char *prompt, const obj_t *sketch, int ns,
                        const obj_t *preview, int np, char *json) {
   uint8_t s[32 * 32 * 3], p0[32 * 32 * 3], p[32 * 32 * 3];
   render(sketch, ns, s);
   render(preview, np, p0);
   blur(p0, p, 32, 32, PREVIEW_BLUR);
   const char *names[2] = {ASSAY_VIEW_PREVIEW, ASSAY_VIEW_SKETCH};
   uint8_t *rgb[2] = {p, s};
   const assay_result_t rc = views_on(ctx, prompt, 2, names, rgb);
   snprintf(json, 2048, "%s", rc == ASSAY_OK && ctx->texts->items[0] ? ctx->texts->items[0] : "");
   expect(rc == ASSAY_OK && json_valid(json), "reflect_views \"%s\": rc %d %s %s", prompt, rc,
          ctx->data.error, json);
}

static void expect_views(views_ctx_t *ctx, const char *prompt, const obj_t *sketch, int ns,
                         const obj_t *preview, int np, const char *feedback,
                         const char *negative, int confirmed, const char *unconfirmed,
                         const char *views) {
   char json[2048], fb[512], neg[256], unc[256], want[128];
   views_scene(ctx, prompt, sketch, ns, preview, np, json);
   json_get(json, "feedback", fb, sizeof fb);
   json_get(json, "negative_prompt", neg, sizeof neg);
   json_get(json, "unconfirmed_negative", unc, sizeof unc);
   snprintf(want, sizeof want, "\"views\":%s,\"confirmed_by_preview\":%s", views,
            confirmed ? "true" : "false");
   expect(strcmp(fb, feedback) == 0 && strcmp(neg, negative) == 0 &&
             strcmp(unc, unconfirmed) == 0 && strstr(json, want) != NULL,
          "reflect_views \"%s\": want feedback \"%s\" negative \"%s\" unconfirmed \"%s\" %s, "
          "got %s", prompt, feedback, negative, unconfirmed, want, json);
}

/* The reflection without the fields reflect_views adds (from ,"views": on). */
static void strip_views(const char *json, char *out, size_t size) {
   snprintf(out, size, "%s", json != NULL ? json : "");
   char *p = strstr(out, ",\"views\":");
   if (p != NULL) {
      p[0] = '}';
      p[1] = '\0';
   }
}

static void test_reflector_views(const char *dir, tcase_t *cases, int n) {
   loaded_t r = {0};
   const int ok = load_plugin(dir, "shapes-reflector", ASSAY_EXT_REFLECTOR_VIEWS_DRAFT, &r) == 0;
   expect(ok, "shapes-reflector has %s", ASSAY_EXT_REFLECTOR_VIEWS_DRAFT);
   if (!ok)
      return;
   views_ctx_t ctx = {r.plugin, r.plugin->get_extension(r.plugin, ASSAY_EXT_REFLECTOR), r.ext,
                      calloc(1, sizeof(texts_t)), {{0}}, {&fake_host, 1, NULL}};
   ctx.call.host_data = &ctx.data;
   expect(ctx.one != NULL, "shapes-reflector still has %s", ASSAY_EXT_REFLECTOR);

   const obj_t btri = {SW_TRIANGLE, SW_BLUE, 10, 10, 10}, ytri = {SW_TRIANGLE, SW_YELLOW, 10, 10, 10};
   const obj_t rc_right = {SW_CIRCLE, SW_RED, 20, 12, 9}, bsq_left = {SW_SQUARE, SW_BLUE, 2, 12, 9};
   const obj_t rc_left = {SW_CIRCLE, SW_RED, 2, 12, 9}, bsq_right = {SW_SQUARE, SW_BLUE, 20, 12, 9};
   const obj_t rc1 = {SW_CIRCLE, SW_RED, 2, 2, 9}, rc2 = {SW_CIRCLE, SW_RED, 20, 2, 9},
               rc3 = {SW_CIRCLE, SW_RED, 2, 20, 9};
   /* the blurred preview is still read by the checker: a blue blob that may be a triangle */
   {
      uint8_t a[32 * 32 * 3], b[32 * 32 * 3];
      render(&btri, 1, a);
      blur(a, b, 32, 32, PREVIEW_BLUR);
      const sw_image_t img = {32, 32, 96, b};
      sw_det_t *d = NULL;
      int nd = 0;
      sw_detect(&img, &d, &nd);
      const sw_group_t g = {SW_TRIANGLE, SW_BLUE, 1, 0};
      expect(nd == 1 && sw_det_may_match(&d[0], &g), "the checker reads a blurred (sigma %.1f) "
             "blue triangle: %d detections", PREVIEW_BLUR, nd);
      free(d);
   }
   /* persistent errors: seen in the sketch and the preview -> named, confirmed */
   {
      obj_t o[1] = {btri};
      expect_views(&ctx, "a yellow triangle", o, 1, o, 1, "Make the blue triangle yellow.",
                   "a blue triangle", 1, "", "[\"preview\",\"sketch\"]");
      expect_views(&ctx, "a blue square", o, 1, o, 1, "Turn the blue triangle into a square.",
                   "a blue triangle", 1, "", "[\"preview\",\"sketch\"]");
   }
   {
      obj_t o[2] = {rc_right, bsq_left};
      expect_views(&ctx, "a red circle left of a blue square", o, 2, o, 2,
                   "Move the red circle to the left of the blue square.",
                   "a blue square left of a red circle", 1, "", "[\"preview\",\"sketch\"]");
   }
   {
      obj_t o[3] = {rc1, rc2, rc3};
      expect_views(&ctx, "two red circles", o, 3, o, 3, "Remove the extra red circle.",
                   "three red circles", 1, "", "[\"preview\",\"sketch\"]");
   }
   /* the preview disagrees: the defect is the cheap finish's, the negative is dropped (the
    * feedback still comes from the sketch) */
   {
      obj_t s[1] = {btri}, p[1] = {ytri};
      expect_views(&ctx, "a yellow triangle", s, 1, p, 1, "Make the blue triangle yellow.", "",
                   0, "a blue triangle", "[\"preview\",\"sketch\"]");
      /* the preview is not trusted on shapes (blur makes small triangles square-ish): a blue
       * object in it keeps "a blue triangle" whatever shape it seems to have */
      obj_t sq[1] = {{SW_SQUARE, SW_BLUE, 10, 10, 10}};
      expect_views(&ctx, "a blue square", s, 1, sq, 1, "Turn the blue triangle into a square.",
                   "a blue triangle", 1, "", "[\"preview\",\"sketch\"]");
      /* ... but where colour does not tell the objects apart, shape does */
      obj_t cs[2] = {{SW_CIRCLE, SW_GREEN, 20, 12, 10}, {SW_SQUARE, SW_GREEN, 2, 12, 10}};
      obj_t cp[2] = {{SW_CIRCLE, SW_GREEN, 2, 12, 10}, {SW_SQUARE, SW_GREEN, 20, 12, 10}};
      expect_views(&ctx, "a circle left of a square", cs, 2, cs, 2,
                   "Move the circle to the left of the square.", "a square left of a circle", 1,
                   "", "[\"preview\",\"sketch\"]");
      expect_views(&ctx, "a circle left of a square", cs, 2, cp, 2,
                   "Move the circle to the left of the square.", "", 0,
                   "a square left of a circle", "[\"preview\",\"sketch\"]");
   }
   {
      obj_t s[2] = {rc_right, bsq_left}, p[2] = {rc_left, bsq_right};
      expect_views(&ctx, "a red circle left of a blue square", s, 2, p, 2,
                   "Move the red circle to the left of the blue square.", "", 0,
                   "a blue square left of a red circle", "[\"preview\",\"sketch\"]");
   }
   {
      obj_t s[3] = {rc1, rc2, rc3}, p[2] = {rc1, rc2};
      expect_views(&ctx, "two red circles", s, 3, p, 2, "Remove the extra red circle.", "", 0,
                   "three red circles", "[\"preview\",\"sketch\"]");
   }
   /* partly confirmed: only what the preview shows too */
   {
      obj_t s[2] = {{SW_SQUARE, SW_BLUE, 2, 2, 9}, {SW_TRIANGLE, SW_RED, 20, 20, 9}};
      obj_t p[2] = {{SW_SQUARE, SW_BLUE, 2, 2, 9}, {SW_TRIANGLE, SW_BLUE, 20, 20, 9}};
      expect_views(&ctx, "a red square and a blue triangle", s, 2, s, 2,
                   "Make the blue square red. Make the red triangle blue.",
                   "a blue square and a red triangle", 1, "", "[\"preview\",\"sketch\"]");
      expect_views(&ctx, "a red square and a blue triangle", s, 2, p, 2,
                   "Make the blue square red. Make the red triangle blue.", "a blue square", 1,
                   "", "[\"preview\",\"sketch\"]");
   }
   /* an unreadable preview (no object: background, or specks under 6 pixels) is ignored */
   {
      obj_t s[1] = {btri}, speck[1] = {{SW_SQUARE, SW_BLUE, 10, 10, 2}};
      expect_views(&ctx, "a yellow triangle", s, 1, NULL, 0, "Make the blue triangle yellow.",
                   "a blue triangle", 0, "", "[\"sketch\"]");
      expect_views(&ctx, "a yellow triangle", s, 1, speck, 1, "Make the blue triangle yellow.",
                   "a blue triangle", 0, "", "[\"sketch\"]");
   }
   /* a passing sketch: no negative whatever the preview */
   {
      obj_t s[1] = {ytri}, p[1] = {btri};
      expect_views(&ctx, "a yellow triangle", s, 1, p, 1, "The image matches the prompt.", "",
                   0, "", "[\"preview\",\"sketch\"]");
   }

   /* which view is primary; unknown names ignored */
   {
      uint8_t a[32 * 32 * 3], b[32 * 32 * 3], pv[32 * 32 * 3];
      obj_t oa[1] = {btri}, ob[1] = {ytri};
      render(oa, 1, a);
      render(ob, 1, b);
      memset(pv, 0, sizeof pv);
      assay_image_t ia = {32, 32, 96, a}, ib = {32, 32, 96, b};
      char want_a[2048], want_b[2048], got[2048];
      assay_text_out_t out = {ctx.texts, text_set};
      ctx.one->reflect(r.plugin, &ctx.call, "a yellow triangle", 1, &ia, NULL, NULL, &out);
      snprintf(want_a, sizeof want_a, "%s", ctx.texts->items[0]);
      ctx.one->reflect(r.plugin, &ctx.call, "a yellow triangle", 1, &ib, NULL, NULL, &out);
      snprintf(want_b, sizeof want_b, "%s", ctx.texts->items[0]);
      static const struct {
         uint32_t n;
         const char *names[3];
         int which; /* 0: a, 1: b */
         const char *views;
      } rows[] = {
         {2, {"sketch", "final"}, 1, "[\"final\"]"},
         {2, {"final", "sketch"}, 0, "[\"final\"]"},
         {2, {"sketch", "depth"}, 0, "[\"sketch\"]"},
         {2, {"depth", "sketch"}, 1, "[\"sketch\"]"},
         {1, {"depth"}, 0, "[\"depth\"]"},
         {2, {"depth", "mask"}, 1, "[\"mask\"]"},
         {2, {"preview", "depth"}, 0, "[\"preview\"]"},
         {3, {"preview", "sketch", "final"}, 0, "[\"final\"]"}, /* black preview: unread */
      };
      for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
         uint8_t *rgb[3];
         for (uint32_t j = 0; j < rows[k].n; j++)
            rgb[j] = rows[k].n == 3 ? (j == 0 ? pv : j == 1 ? b : a) : j == 0 ? a : b;
         const assay_result_t rc = views_on(&ctx, "a yellow triangle", rows[k].n,
                                            rows[k].names, rgb);
         const char *t = ctx.texts->items[0];
         strip_views(t, got, sizeof got);
         char want_views[128];
         snprintf(want_views, sizeof want_views, "\"views\":%s", rows[k].views);
         expect(rc == ASSAY_OK && json_valid(t) &&
                   strcmp(got, rows[k].which ? want_b : want_a) == 0 &&
                   strstr(t, want_views) != NULL,
                "primary view of row %zu (%s...): rc %d, got %s", k, rows[k].names[0], rc,
                t ? t : "(null)");
      }
   }

   /* only "sketch" = reflect on that image (apart from the added fields), over the whole
    * fixture, with histories; and the fixture's images with a blurred copy as preview */
   {
      int same = 0, total = 0, valid = 0, with_neg = 0, confirmed = 0;
      const char *hist_one[1] = {"[{\"feedback\":\"x\"}]"};
      for (int i = 0; i < n; i++) {
         const tcase_t *c = &cases[i];
         if (c->type != 1)
            continue;
         total++;
         assay_image_t img = {(uint32_t)c->w, (uint32_t)c->h, (uint32_t)c->w * 3, c->rgb};
         assay_text_out_t out = {ctx.texts, text_set};
         char want[2048], got[2048], neg[256], tmpneg[256], err[64];
         ctx.one->reflect(r.plugin, &ctx.call, c->caption, 1, &img, NULL, hist_one, &out);
         snprintf(want, sizeof want, "%s", ctx.texts->items[0] ? ctx.texts->items[0] : "");
         json_get(want, "negative_prompt", tmpneg, sizeof tmpneg);
         const char *sk[1] = {ASSAY_VIEW_SKETCH};
         assay_result_t rc = ctx.views->reflect_views(r.plugin, &ctx.call, c->caption, 1, 1, sk,
                                                      &img, NULL, hist_one, &out);
         strip_views(ctx.texts->items[0], got, sizeof got);
         same += rc == ASSAY_OK && strcmp(got, want) == 0 &&
                 strstr(ctx.texts->items[0], ",\"views\":[\"sketch\"],\"confirmed_by_preview\""
                                             ":false}") != NULL;
         /* preview: the image blurred */
         uint8_t *pv = malloc((size_t)c->w * c->h * 3);
         blur(c->rgb, pv, c->w, c->h, PREVIEW_BLUR);
         assay_image_t two[2] = {{(uint32_t)c->w, (uint32_t)c->h, (uint32_t)c->w * 3, pv}, img};
         const char *ps[2] = {ASSAY_VIEW_PREVIEW, ASSAY_VIEW_SKETCH};
         rc = ctx.views->reflect_views(r.plugin, &ctx.call, c->caption, 1, 2, ps, two, NULL,
                                       NULL, &out);
         const char *t = ctx.texts->items[0];
         json_get(t, "negative_prompt", neg, sizeof neg);
         sw_spec_t tmp;
         char fb1[1024], fb2[1024];
         json_get(want, "feedback", fb1, sizeof fb1);
         json_get(t, "feedback", fb2, sizeof fb2);
         const int v = rc == ASSAY_OK && json_valid(t) && strcmp(fb1, fb2) == 0 &&
                       (neg[0] == '\0' || sw_parse(neg, &tmp, err, sizeof err) == 0);
         valid += v;
         expect(v, "reflect_views on fixture case %d [%s] \"%s\": %s", i, c->tag, c->caption,
                t ? t : "(null)");
         with_neg += tmpneg[0] != '\0';
         confirmed += tmpneg[0] != '\0' && strcmp(neg, tmpneg) == 0 &&
                      strstr(t, "\"confirmed_by_preview\":true") != NULL;
         if (getenv("SHV_SHOW") != NULL && strcmp(getenv("SHV_SHOW"), "views") == 0 &&
             tmpneg[0] != '\0' && strcmp(neg, tmpneg) != 0)
            printf("[%s] \"%s\" sketch negative \"%s\" -> %s\n", c->tag, c->caption, tmpneg, t);
         free(pv);
      }
      printf("reflect_views: only a sketch = reflect %d/%d; with a blurred (sigma %.1f) copy as "
             "preview: valid %d/%d, the whole negative confirmed %d/%d\n", same, total,
             PREVIEW_BLUR, valid, total, confirmed, with_neg);
      expect(same == total, "reflect_views on a sketch alone equals reflect");
      /* a blurred copy of the same image shows the same problems: nearly all confirmed */
      expect(with_neg > 0 && confirmed >= 0.9 * with_neg,
             "a blurred copy confirms the negative: %d/%d", confirmed, with_neg);
   }

   /* bad inputs */
   {
      uint8_t a[32 * 32 * 3];
      render(&btri, 1, a);
      assay_image_t imgs[9];
      for (int j = 0; j < 9; j++)
         imgs[j] = (assay_image_t){32, 32, 96, a};
      const char *names[9] = {"preview", "sketch", "final", "x", "y", "z", "u", "v", "w"};
      assay_text_out_t out = {ctx.texts, text_set};
      const char *P = "a yellow triangle";
      assay_result_t rc;
#define REFUSED(what, words, ...)                                                               \
   do {                                                                                        \
      ctx.data.error[0] = '\0';                                                                \
      rc = ctx.views->reflect_views(r.plugin, &ctx.call, __VA_ARGS__);                          \
      expect(rc == ASSAY_ERR_INVALID_ARGUMENT && strstr(ctx.data.error, words) != NULL,         \
             "reflect_views refuses %s: rc %d \"%s\"", what, rc, ctx.data.error);               \
   } while (0)
      REFUSED("0 views", "1 to 8 views", P, 1, 0, names, imgs, NULL, NULL, &out);
      REFUSED("9 views", "got 9", P, 1, 9, names, imgs, NULL, NULL, &out);
      REFUSED("NULL view names", "NULL", P, 1, 2, NULL, imgs, NULL, NULL, &out);
      REFUSED("NULL images", "NULL", P, 1, 2, names, NULL, NULL, NULL, &out);
      REFUSED("NULL prompt", "NULL", NULL, 1, 2, names, imgs, NULL, NULL, &out);
      REFUSED("NULL output", "NULL", P, 1, 2, names, imgs, NULL, NULL, NULL);
      const char *nullname[2] = {"preview", NULL};
      REFUSED("a NULL view name", "NULL name for view 1", P, 1, 2, nullname, imgs, NULL, NULL,
              &out);
      const char *twice[3] = {"sketch", "preview", "sketch"};
      REFUSED("a view twice", "\"sketch\" twice", P, 1, 3, twice, imgs, NULL, NULL, &out);
      REFUSED("a prompt outside the grammar", "hexagon", "a red hexagon", 1, 2, names, imgs,
              NULL, NULL, &out);
      const char *badhist[2] = {"[]", "{}"};
      REFUSED("a history that is not an array", "history[1]", P, 2, 2, names, imgs, NULL,
              badhist, &out);
      imgs[3].stride = 5; /* candidate 1's sketch */
      REFUSED("a malformed sketch", "image 1's view 1 (\"sketch\") is malformed", P, 2, 2,
              names, imgs, NULL, NULL, &out);
      imgs[3].stride = 96;
      imgs[2].width = 100; /* candidate 1's preview */
      REFUSED("a malformed preview", "image 1's view 0 (\"preview\") is malformed", P, 2, 2,
              names, imgs, NULL, NULL, &out);
      imgs[2].width = 32;
#undef REFUSED
      /* an unknown view is not read: its image may be anything */
      imgs[1] = (assay_image_t){0, 0, 0, NULL};
      const char *unk[3] = {"sketch", "depth", "preview"};
      imgs[2] = imgs[0];
      rc = ctx.views->reflect_views(r.plugin, &ctx.call, P, 1, 3, unk, imgs, NULL, NULL, &out);
      expect(rc == ASSAY_OK && ctx.texts->items[0] != NULL &&
                strstr(ctx.texts->items[0], "\"confirmed_by_preview\":true") != NULL,
             "an unknown view's image is ignored: rc %d %s", rc, ctx.data.error);
      rc = ctx.views->reflect_views(r.plugin, &ctx.call, P, 0, 2, names, NULL, NULL, NULL, &out);
      expect(rc == ASSAY_OK, "zero candidates is fine: rc %d %s", rc, ctx.data.error);
   }
   texts_free(ctx.texts);
   free(ctx.texts);
   r.plugin->destroy(r.plugin);
}

/* ---- parser messages ------------------------------------------------------------------- */
static void test_messages(void) {
   static const char *const bad[][2] = {
      {"a red hexagon", "unknown word \"hexagon\"; shapes are circle, square, triangle"},
      {"a purple circle", "unknown word \"purple\"; colours are red, green, blue, yellow"},
      {"the red circle", "a caption starts with \"a\" or a number word"},
      {"a red circle near a blue square", "joined by \"and\""},
      {"a red circle and a red circle", "must differ in shape"},
      {"two red circles left of a square", "relation needs one object on each side"},
      {"four circles and a square", "at most 4 objects in total; the caption asks for 5"},
      {"a circles", "expected a singular shape"},
      {"two circle", "expected a plural shape"},
      {"a red", "expected a shape (circle, square, triangle) after \"red\", got the end"},
      {"a red circle left a square", "expected \"of\" after \"left\""},
      {"a red circle and", "got the end of the caption"},
      {"a red circle a blue square", "expected \"and\" or a relation"},
      {"a circle and a square and a triangle", "unexpected words after the second object"},
      {"a a a a a a a a a", "too many words (9)"},
   };
   for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      sw_spec_t spec;
      char err[512];
      const int rc = sw_parse(bad[i][0], &spec, err, sizeof err);
      expect(rc != 0 && strstr(err, bad[i][1]) != NULL, "message for \"%s\": want \"%s\", got "
             "\"%s\"", bad[i][0], bad[i][1], err);
   }
}

int main(int argc, char **argv) {
   if (argc < 3) {
      fprintf(stderr, "usage: %s CASES.bin PLUGIN_DIR\n", argv[0]);
      return 2;
   }
   int n = 0;
   tcase_t *cases = load_cases(argv[1], &n);
   expect(cases != NULL, "load %s", argv[1]);
   if (cases != NULL) {
      test_agreement(cases, n);
      test_validate_renders(2000);
      test_quality(cases, n);
      test_reflector(cases, n);
      test_messages();
      test_plugins(argv[2], cases, n);
      test_reflector_views(argv[2], cases, n);
      for (int i = 0; i < n; i++)
         free(cases[i].rgb);
      free(cases);
   }
   printf("%d passed, %d failed\n", passed, failed);
   return failed > 0 ? 1 : 0;
}
