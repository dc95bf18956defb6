/* test_repair.c: the shapes corrector's held-out repair rate, through the C engine, judged by
 * the shapes checker (world/: the `pass` of shapes-checker / shapes-reflector).
 *
 *   test_repair CORRECTOR_WEIGHTS BASE_WEIGHTS FIXTURE [PER_KIND [SEED]]
 *
 * FIXTURE: tests/fixtures/repair-heldout.safetensors (tools/corrector/export_repair_fixture.py:
 * data.held_out(24), the trainer's held-out stream: per flaw kind (count, colour, shape,
 * position) 24 rule-based triplets of prompt, the reflector's feedback and the flawed render).
 * PER_KIND (default all) uses the first PER_KIND triplets of each kind; SEED (default 0)
 * offsets the noise seeds (for measuring the spread; the test itself uses 0). With the
 * environment variable REPAIR_NOREF=1 the corrector gets an empty reflection (the ablation:
 * does it read the text?).
 *
 * For each triplet, with the same fixed noise (an LCG + Box-Muller, seeded here) and the same
 * NFE (20 Euler steps on the model's schedule, CFG 1.75 -> 40 NFE):
 *   corrector  condition encode_reference(prompt, reflection, flawed image), CFG negative
 *              encode_reference("", "", the same flawed image): v = v_neg + g (v_pos - v_neg);
 *   base       shapes-base from the prompt alone (negative ""), the "regenerate" baseline.
 * The decoded image (round((clamp(x) + 1) * 127.5)) passes when the checker passes it for the
 * prompt. Prints the per-kind table; fails when the corrector's overall repair rate is below
 * REPAIR_FLOOR or not above the base model's rate.
 *
 * `make -C Plugins shapes-check` runs PER_KIND 18 (72 triplets, ~30 s on one core: 2 x 72 x 40
 * NFE at ~5 ms). Measured on the committed step-4800 export (x86-64, OpenBLAS 0.3.21, 1
 * thread), seed 0, 18 per kind:
 *                 count   colour  shape   position  all
 *   corrector     10/18   10/18   10/18   1/18      31/72 = 43.1%
 *   base          6/18    8/18    9/18    2/18      25/72 = 34.7%
 * All 96 triplets over noise seeds 0..7 (768 samples each): corrector 44.1% (count 53.1,
 * colour 59.9, shape 59.4, position 4.2), base 34.2% (39.6, 39.1, 44.3, 14.1); the corrector
 * was ahead on every seed (seed 0 was its lowest: 38.5% vs 34.4%). The bits (and so a
 * borderline image) may differ between CPUs / BLAS builds; the floor leaves 8 points below
 * the measurement for that and for future exports. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <time.h>

#include "engine.h"
#include "json.h"
#include "safetensors.h"
#include "testutil.h"
#include "world.h"

/* Overall corrector repair rate measured by `make -C Plugins shapes-check` (18 per kind, seed 0)
 * on the step-4800 export: 31/72 (see the comment at the top); the floor is 8 points below. */
#define REPAIR_MEASURED (31.0 / 72.0)
#define REPAIR_FLOOR (REPAIR_MEASURED - 0.08)
#define STEPS 20
#define GUIDANCE 1.75f
#define NKINDS 4

static double now(void) {
   struct timespec ts;
   clock_gettime(CLOCK_MONOTONIC, &ts);
   return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* t_i = shift(1 - i/steps), shift(u) = s u / (1 + (s - 1) u) (the host's schedule). */
static float sched(int i, int steps, double s) {
   const double u = 1.0 - (double)i / steps;
   return (float)(s * u / (1.0 + (s - 1.0) * u));
}

/* Euler + CFG on n samples x (in place); cond: n positive then n negative conditions. */
static int sample(const shapes_engine_t *e, int n, float *x, const float *cond) {
   const shapes_config_t *c = shapes_engine_config(e);
   const size_t ls = (size_t)c->latent_size, size = (size_t)n * ls;
   float *xs = malloc(2 * size * sizeof *xs), *vs = malloc(2 * size * sizeof *vs), *t = malloc(2 * (size_t)n * sizeof *t);
   char err[512];
   int rc = 0;
   for (int i = 0; i < STEPS && rc == 0; i++) {
      const float ta = sched(i, STEPS, c->schedule_shift), tb = sched(i + 1, STEPS, c->schedule_shift);
      for (int k = 0; k < 2 * n; k++) t[k] = ta;
      memcpy(xs, x, size * sizeof *xs);
      memcpy(xs + size, x, size * sizeof *xs);
      rc = shapes_velocity(e, (uint32_t)(2 * n), xs, t, cond, vs, err, sizeof err);
      if (rc != 0) printf("velocity: %s\n", err);
      for (size_t q = 0; rc == 0 && q < size; q++)
         x[q] += (tb - ta) * (vs[size + q] + GUIDANCE * (vs[q] - vs[size + q]));
   }
   free(xs); free(vs); free(t);
   return rc;
}

/* The checker's verdict on sample x (CHW floats) for `prompt`. */
static int passes(const float *x, int S, const char *prompt) {
   uint8_t rgb[64 * 64 * 3];
   const size_t plane = (size_t)S * S;
   for (size_t p = 0; p < plane; p++)
      for (int ch = 0; ch < 3; ch++) {
         float v = x[(size_t)ch * plane + p];
         if (!(v >= -1.0f)) v = -1.0f;
         if (v > 1.0f) v = 1.0f;
         rgb[p * 3 + (size_t)ch] = (uint8_t)rintf((v + 1.0f) * 127.5f);
      }
   sw_spec_t spec;
   char err[256];
   if (sw_parse(prompt, &spec, err, sizeof err) != 0) {
      printf("prompt \"%s\" does not parse: %s\n", prompt, err);
      return 0;
   }
   sw_image_t img = {(uint32_t)S, (uint32_t)S, (uint32_t)S * 3, rgb};
   sw_check_t chk;
   if (sw_check(&img, &spec, &chk) != 0) return 0;
   const int ok = chk.pass;
   sw_check_free(&chk);
   return ok;
}

int main(int argc, char **argv) {
   if (argc < 4 || argc > 6) {
      fprintf(stderr, "usage: %s CORRECTOR_WEIGHTS BASE_WEIGHTS FIXTURE [PER_KIND [SEED]]\n", argv[0]);
      return 2;
   }
   const double t0 = now();
   char err[1024];
   shapes_engine_set_threads(1);
   shapes_engine_t *ec = shapes_engine_load(argv[1], err, sizeof err);
   CHECK(ec != NULL && shapes_engine_config(ec)->is_corrector, "corrector: %s", ec ? "not a corrector" : err);
   shapes_engine_t *eb = shapes_engine_load(argv[2], err, sizeof err);
   CHECK(eb != NULL, "base: %s", err);
   st_file *fx = st_open(argv[3], ST_F16 | ST_I32, err, sizeof err);
   CHECK(fx != NULL, "fixture: %s", err);
   if (ec == NULL || eb == NULL || fx == NULL) return tu_finish();
   const shapes_config_t *c = shapes_engine_config(ec);
   const int S = c->image_size;
   const char *pj = st_meta(fx, "prompts"), *rj = st_meta(fx, "reflections");
   sj_value *prompts = pj ? sj_parse(pj, strlen(pj), err, sizeof err) : NULL;
   sj_value *refl = rj ? sj_parse(rj, strlen(rj), err, sizeof err) : NULL;
   const st_tensor *tf = st_find(fx, "flawed"), *tk = st_find(fx, "kind");
   const size_t N = tk ? (size_t)tk->numel : 0;
   CHECK(prompts && refl && tf && tk && prompts->length == N && refl->length == N && N > 0 &&
            tf->numel == N * (size_t)S * S * 3, "fixture layout (prompts, reflections, flawed [N,%d,%d,3], kind [N])", S, S);
   if (!(prompts && refl && tf && tk && prompts->length == N && refl->length == N && N > 0 &&
         tf->numel == N * (size_t)S * S * 3))
      return tu_finish();
   float *flawed = malloc(tf->numel * sizeof *flawed), *kindf = malloc(N * sizeof *kindf);
   st_to_f32(fx, tf, flawed);
   st_to_f32(fx, tk, kindf);
   const int per_kind = argc >= 5 ? atoi(argv[4]) : (int)N;
   const unsigned seed = argc >= 6 ? (unsigned)strtoul(argv[5], NULL, 10) : 0u;
   /* the rows used: the first per_kind of each kind, in fixture order */
   int *rows = malloc(N * sizeof *rows), seen[NKINDS] = {0}, n = 0;
   for (size_t i = 0; i < N; i++) {
      const int k = (int)kindf[i];
      if (k >= 0 && k < NKINDS && seen[k] < per_kind) {
         seen[k]++;
         rows[n++] = (int)i;
      }
   }
   const size_t ls = (size_t)c->latent_size, csc = (size_t)c->condition_size;
   const size_t csb = (size_t)shapes_engine_config(eb)->condition_size;
   float *condc = malloc((size_t)2 * n * csc * sizeof *condc), *condb = malloc((size_t)2 * n * csb * sizeof *condb);
   float *noise = malloc((size_t)n * ls * sizeof *noise), *xc = malloc((size_t)n * ls * sizeof *xc);
   float *xb = malloc((size_t)n * ls * sizeof *xb);
   uint8_t *rgb = malloc((size_t)S * S * 3);
   const char *noref_env = getenv("REPAIR_NOREF");
   const int noref = noref_env != NULL && strcmp(noref_env, "1") == 0;
   int enc_ok = 1;
   for (int r = 0; r < n; r++) {
      const int i = rows[r];
      const char *prompt = prompts->items[i].string, *instr = noref ? "" : refl->items[i].string;
      for (size_t q = 0; q < (size_t)S * S * 3; q++) rgb[q] = (uint8_t)flawed[(size_t)i * S * S * 3 + q];
      enc_ok &= shapes_encode_reference(ec, prompt, instr, rgb, (size_t)S * 3, condc + (size_t)r * csc, err, sizeof err) == 0;
      enc_ok &= shapes_encode_reference(ec, "", "", rgb, (size_t)S * 3, condc + (size_t)(n + r) * csc, err, sizeof err) == 0;
      enc_ok &= shapes_encode(eb, prompt, condb + (size_t)r * csb, err, sizeof err) == 0;
      enc_ok &= shapes_encode(eb, "", condb + (size_t)(n + r) * csb, err, sizeof err) == 0;
   }
   CHECK(enc_ok, "encoding the fixture: %s", err);
   /* Fixed noise: LCG + Box-Muller, a stream per triplet seeded by its fixture index (a
    * subset (PER_KIND) keeps each triplet's noise). */
   for (int r = 0; r < n; r++) {
      unsigned g = 20240607u + 7919u * (unsigned)rows[r] + 104729u * seed;
      float *z = noise + (size_t)r * ls;
      for (size_t q = 0; q < ls; q += 2) {
         g = g * 1664525u + 1013904223u;
         const double u1 = ((g >> 8) + 1.0) / 16777217.0;
         g = g * 1664525u + 1013904223u;
         const double u2 = (g >> 8) / 16777216.0;
         z[q] = (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
         if (q + 1 < ls) z[q + 1] = (float)(sqrt(-2 * log(u1)) * sin(6.283185307179586 * u2));
      }
   }
   memcpy(xc, noise, (size_t)n * ls * sizeof *xc);
   memcpy(xb, noise, (size_t)n * ls * sizeof *xb);
   const double t1 = now();
   CHECK(sample(ec, n, xc, condc) == 0, "corrector sampling");
   const double t2 = now();
   CHECK(sample(eb, n, xb, condb) == 0, "base sampling");
   const double t3 = now();
   int pc[NKINDS + 1] = {0}, pb[NKINDS + 1] = {0}, cnt[NKINDS + 1] = {0};
   for (int r = 0; r < n; r++) {
      const int i = rows[r], k = (int)kindf[i];
      const char *prompt = prompts->items[i].string;
      const int okc = passes(xc + (size_t)r * ls, S, prompt), okb = passes(xb + (size_t)r * ls, S, prompt);
      pc[k] += okc; pb[k] += okb; cnt[k]++;
      pc[NKINDS] += okc; pb[NKINDS] += okb; cnt[NKINDS]++;
   }
   static const char *const kinds[NKINDS + 1] = {"count", "colour", "shape", "position", "all"};
   printf("test_repair: %s vs %s on %s (%d triplets, %d Euler steps, CFG %.2f, %d NFE each, noise seed %u)\n",
          argv[1], argv[2], argv[3], n, STEPS, (double)GUIDANCE, 2 * STEPS, seed);
   printf("  %-9s %4s  %-16s %-16s\n", "flaw", "n", noref ? "corrector noref" : "corrector", "base (prompt)");
   for (int k = 0; k <= NKINDS; k++)
      if (cnt[k] > 0)
         printf("  %-9s %4d  %3d  (%5.1f%%)    %3d  (%5.1f%%)\n", kinds[k], cnt[k], pc[k], 100.0 * pc[k] / cnt[k], pb[k],
                100.0 * pb[k] / cnt[k]);
   const double rc = (double)pc[NKINDS] / n, rb = (double)pb[NKINDS] / n;
   printf("  time: encode %.1f s, corrector %.1f s, base %.1f s (%.2f ms per NFE row)\n", t1 - t0, t2 - t1, t3 - t2,
          1e3 * (t3 - t1) / (4.0 * STEPS * n));
   CHECK(rc >= REPAIR_FLOOR, "corrector repair rate %.1f%% is below the floor %.1f%% (measured %.1f%%)", 100 * rc,
         100 * REPAIR_FLOOR, 100 * REPAIR_MEASURED);
   CHECK(rc > rb, "the corrector (%.1f%%) must repair more than regenerating from the prompt (%.1f%%)", 100 * rc, 100 * rb);
   free(flawed); free(kindf); free(rows); free(condc); free(condb); free(noise); free(xc); free(xb); free(rgb);
   sj_free(prompts); sj_free(refl);
   st_close(fx);
   shapes_engine_free(ec);
   shapes_engine_free(eb);
   return tu_finish();
}
