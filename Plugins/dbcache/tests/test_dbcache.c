/* test_dbcache.c: the dbcache sampler plugin against the shapes model through a fake host
 * (harness.h: model access, blocks access, draft block_rows, guidance 1.75 against "").
 *
 *   test_dbcache PATH/shapes.so PATH/dbcache.so        (make -C Plugins dbcache-check)
 *
 * Checks: (1) threshold 0 == the host's Euler bit for bit (1 -> 0 in 20 steps; the segment
 * 0.7 -> 0 on grid points; an off-grid segment against the sampler's own uniform times);
 * (2) default options cache some steps, FLOP ratio < 1 (printed with the difference to Euler);
 * (3) per-sample decisions: each sample of a batch of 4 (different seeds and prompts) gets the
 * bytes it gets alone, and the samples' cache patterns differ; (4) without the blocks access
 * (or without block_rows) == Euler bit for bit; (5) bad options refused with
 * ASSAY_ERR_INVALID_ARGUMENT and a message naming the option; (6) ASSAY_ERR_BUDGET from the
 * prologue returned as is, without a report; cancellation between steps. Last line:
 * "N passed, M failed". */
#include "harness.h"

static int passed, failed;
#define CHECK(cond, ...)                                                                     \
   do {                                                                                      \
      if (cond) {                                                                            \
         passed++;                                                                           \
      } else {                                                                               \
         failed++;                                                                           \
         printf("FAIL %s:%d: ", __FILE__, __LINE__);                                          \
         printf(__VA_ARGS__);                                                                \
         printf("\n");                                                                       \
      }                                                                                      \
   } while (0)

static double max_abs_diff(const float *a, const float *b, size_t n) {
   double m = 0;
   for (size_t i = 0; i < n; i++) {
      double d = fabs((double)a[i] - b[i]);
      if (!(d <= m)) m = d;
   }
   return m;
}

/* Steps of sample s (row s, the positive row) that ran only the always-run blocks. */
static int cached_steps(const hx_job_t *j, uint32_t s, int steps, uint32_t always, char *pattern) {
   int c = 0;
   for (int i = 0; i < steps; i++) {
      const int hit = j->ran[i][s] == always;
      pattern[i] = hit ? 'c' : '.';
      c += hit;
   }
   pattern[steps] = 0;
   return c;
}

int main(int argc, char **argv) {
   if (argc < 3) {
      fprintf(stderr, "usage: %s shapes.so dbcache.so\n", argv[0]);
      return 2;
   }
   setvbuf(stdout, NULL, _IONBF, 0);
   hx_model_t hm;
   if (hx_model_open(&hm, argv[1]) != 0) {
      printf("cannot load the shapes model from %s\n0 passed, 1 failed\n", argv[1]);
      return 1;
   }
   void *dlib;
   const assay_plugin_t *dbc = hx_load(argv[2], "dbcache", NULL, 0, &dlib);
   if (dbc == NULL) {
      printf("cannot load dbcache from %s\n0 passed, 1 failed\n", argv[2]);
      return 1;
   }
   CHECK(strcmp(dbc->desc->id, "dbcache") == 0 && dbc->desc->kind == ASSAY_KIND_SAMPLER,
         "descriptor: id dbcache, kind sampler");
   CHECK(dbc->get_extension(dbc, ASSAY_EXT_SAMPLER) != NULL, "assay.sampler/1 interface");
   const uint32_t nb = hm.bi.block_count;
   printf("  shapes: %u middle blocks, hidden %u floats/row; FLOPs/row prologue %.3g block %.3g "
          "epilogue %.3g\n", nb, hm.bi.hidden_size, hm.bi.prologue_flops, hm.bi.block_flops,
          hm.bi.epilogue_flops);

   const size_t S = hm.S;
   enum { STEPS = 20, B = 4 };
   const float G = 1.75f;
   const char *prompts[B] = {"a red circle", "two blue squares", "a green triangle above a yellow square",
                             "three yellow circles"};
   float *x0 = malloc(B * S * sizeof(float)), *xa = malloc(B * S * sizeof(float));
   float *xb = malloc(B * S * sizeof(float));
   for (int i = 0; i < B; i++) hx_noise(x0 + i * S, S, 100 + i);
   const assay_option_t zero = hx_num("threshold", 0);

   /* (1) threshold 0 == Euler, bit for bit. */
   {
      hx_job_t *j = hx_job_new(&hm, 2, prompts, G);
      memcpy(xa, x0, 2 * S * sizeof(float));
      memcpy(xb, x0, 2 * S * sizeof(float));
      CHECK(hx_euler(j, xa, 1.0f, 0.0f, STEPS) == ASSAY_OK, "euler");
      const double full_flops = j->flops;
      hx_job_reset(j);
      CHECK(hx_advance(dbc, j, xb, 1.0f, 0.0f, STEPS, &zero, 1) == ASSAY_OK, "advance threshold 0: %s",
            hx_last_error);
      CHECK(memcmp(xa, xb, 2 * S * sizeof(float)) == 0, "threshold 0, 1 -> 0: differs from Euler by %.3g",
            max_abs_diff(xa, xb, 2 * S));
      CHECK(j->nfe == STEPS * 4 && j->step == STEPS - 1, "threshold 0: %ld NFEs in %d prologues (want %d, %d)",
            j->nfe, j->step + 1, STEPS * 4, STEPS);
      CHECK(fabs(j->flops - full_flops) < 1e-6 * full_flops, "threshold 0 runs every block: FLOPs %.4g vs %.4g",
            j->flops, full_flops);

      /* Segment 0.7 -> 0 (a sketch from step 6), grid points. */
      const float tk = (float)(1.0 - 6.0 / STEPS);
      memcpy(xa, x0, 2 * S * sizeof(float));
      memcpy(xb, x0, 2 * S * sizeof(float));
      hx_job_reset(j);
      hx_euler(j, xa, tk, 0.0f, STEPS);
      hx_job_reset(j);
      CHECK(hx_advance(dbc, j, xb, tk, 0.0f, STEPS, &zero, 1) == ASSAY_OK, "advance 0.7 -> 0");
      CHECK(memcmp(xa, xb, 2 * S * sizeof(float)) == 0 && j->step == 13,
            "threshold 0, 0.7 -> 0: %d steps, differs from Euler by %.3g", j->step + 1, max_abs_diff(xa, xb, 2 * S));
      /* A middle segment 0.7 -> 0.35 (both on the grid). */
      const float tm = (float)(1.0 - 13.0 / STEPS);
      memcpy(xa, x0, 2 * S * sizeof(float));
      memcpy(xb, x0, 2 * S * sizeof(float));
      hx_job_reset(j);
      hx_euler(j, xa, tk, tm, STEPS);
      hx_job_reset(j);
      CHECK(hx_advance(dbc, j, xb, tk, tm, STEPS, &zero, 1) == ASSAY_OK, "advance 0.7 -> 0.35");
      CHECK(memcmp(xa, xb, 2 * S * sizeof(float)) == 0 && j->step == 6,
            "threshold 0, 0.7 -> 0.35: %d steps, differs from Euler by %.3g", j->step + 1, max_abs_diff(xa, xb, 2 * S));
      /* Off the grid (0.63 -> 0.1): uniform times; threshold 0 equals the fallback's. */
      memcpy(xa, x0, 2 * S * sizeof(float));
      memcpy(xb, x0, 2 * S * sizeof(float));
      hx_job_reset(j);
      CHECK(hx_advance(dbc, j, xb, 0.63f, 0.1f, STEPS, &zero, 1) == ASSAY_OK, "advance 0.63 -> 0.1");
      CHECK(j->step == 10, "0.63 -> 0.1 at 20 steps: %d steps, want ceil(10.6) = 11", j->step + 1);
      j->offer_blocks = 0;
      hx_job_reset(j);
      hx_advance(dbc, j, xa, 0.63f, 0.1f, STEPS, &zero, 1);
      CHECK(j->nfe == 11 * 4, "fallback off the grid: %ld NFEs", j->nfe);
      CHECK(memcmp(xa, xb, 2 * S * sizeof(float)) == 0, "off the grid: blocks path and fallback differ by %.3g",
            max_abs_diff(xa, xb, 2 * S));
      hx_job_free(j);
   }

   /* (2) Defaults cache some steps; FLOP ratio < 1; close to Euler. (4) fallback == Euler. */
   {
      hx_job_t *j = hx_job_new(&hm, 2, prompts, G);
      memcpy(xa, x0, 2 * S * sizeof(float));
      hx_euler(j, xa, 1.0f, 0.0f, STEPS);
      const double full = j->flops, full_blocks = j->block_flops;
      memcpy(xb, x0, 2 * S * sizeof(float));
      hx_job_reset(j);
      CHECK(hx_advance(dbc, j, xb, 1.0f, 0.0f, STEPS, NULL, 0) == ASSAY_OK, "advance defaults: %s", hx_last_error);
      int total_cached = 0;
      for (uint32_t s = 0; s < 2; s++) {
         char pat[HX_MAX_STEPS + 1];
         total_cached += cached_steps(j, s, STEPS, 1, pat);
         printf("  sample %u (%s): %s\n", s, prompts[s], pat);
      }
      printf("  defaults: %d of %d sample-steps cached; FLOPs %.3f of Euler's (middle blocks %.3f, %.2fx fewer); "
             "max |x - x_euler| %.3g; NFEs %ld\n", total_cached, 2 * STEPS, j->flops / full,
             j->block_flops / full_blocks, full_blocks / j->block_flops, max_abs_diff(xa, xb, 2 * S), j->nfe);
      CHECK(total_cached > 0 && j->flops < full, "defaults must cache some steps (FLOP ratio %.3f)", j->flops / full);
      CHECK(j->nfe == (long)STEPS * 4, "a cached step still costs its NFEs: %ld", j->nfe);
      CHECK(j->bad_rows == 0, "block_rows got invalid row lists");
      double mean = 0;
      for (size_t q = 0; q < 2 * S; q++) mean += fabs((double)xa[q] - xb[q]) / (double)(2 * S);
      printf("  defaults: mean |x - x_euler| %.3g\n", mean);
      CHECK(mean < 0.05, "defaults drift far from Euler (mean %.3g)", mean);

      /* (4) No blocks access / no block_rows: plain Euler through evaluate, bit for bit. */
      for (int variant = 0; variant < 2; variant++) {
         j->offer_blocks = variant == 1;
         j->offer_rows = 0;
         memcpy(xb, x0, 2 * S * sizeof(float));
         hx_job_reset(j);
         CHECK(hx_advance(dbc, j, xb, 1.0f, 0.0f, STEPS, NULL, 0) == ASSAY_OK, "fallback advance");
         CHECK(memcmp(xa, xb, 2 * S * sizeof(float)) == 0 && j->step == -1 && j->nfe == STEPS * 4,
               "fallback (%s) must equal Euler through evaluate: diff %.3g, %d prologues",
               variant ? "no block_rows" : "no blocks access", max_abs_diff(xa, xb, 2 * S), j->step + 1);
      }
      hx_job_free(j);
   }

   /* (3) Per sample, with the default options: each sample of a batch of 4 == itself alone;
    * the patterns differ. */
   {
      hx_job_t *j = hx_job_new(&hm, B, prompts, G);
      memcpy(xb, x0, B * S * sizeof(float));
      CHECK(hx_advance(dbc, j, xb, 1.0f, 0.0f, STEPS, NULL, 0) == ASSAY_OK, "batch advance");
      char pats[B][HX_MAX_STEPS + 1];
      for (uint32_t s = 0; s < B; s++) {
         cached_steps(j, s, STEPS, 1, pats[s]);
         char neg[HX_MAX_STEPS + 1];
         cached_steps(j, B + s, STEPS, 1, neg);
         CHECK(strcmp(neg, pats[s]) == 0, "sample %u: its two condition rows must share the decision", s);
      }
      int distinct = 0;
      for (uint32_t s = 1; s < B; s++) distinct |= strcmp(pats[s], pats[0]) != 0;
      printf("  defaults, batch of %d: %s | %s | %s | %s; %ld block_rows calls\n", B, pats[0], pats[1], pats[2],
             pats[3], j->block_rows_calls);
      CHECK(distinct, "defaults: all samples have the same cache pattern; per-sample decisions untested");
      for (uint32_t s = 0; s < B; s++) {
         hx_job_t *one = hx_job_new(&hm, 1, &prompts[s], G);
         memcpy(xa, x0 + s * S, S * sizeof(float));
         CHECK(hx_advance(dbc, one, xa, 1.0f, 0.0f, STEPS, NULL, 0) == ASSAY_OK, "single advance");
         char p1[HX_MAX_STEPS + 1];
         cached_steps(one, 0, STEPS, 1, p1);
         CHECK(memcmp(xa, xb + s * S, S * sizeof(float)) == 0 && strcmp(p1, pats[s]) == 0,
               "sample %u alone differs from its row of the batch by %.3g (pattern %s vs %s)", s, max_abs_diff(xa, xb + s * S, S), p1, pats[s]);
         hx_job_free(one);
      }
      hx_job_free(j);
   }

   /* Caps: max_consecutive 1 never caches twice in a row; max_cached 2 caches at most twice;
    * warmup 20 never caches. */
   {
      hx_job_t *j = hx_job_new(&hm, 2, prompts, G);
      const assay_option_t caps[3][2] = {
         {hx_num("threshold", 0.5), hx_num("max_consecutive", 1)},
         {hx_num("threshold", 0.5), hx_num("max_cached", 2)},
         {hx_num("threshold", 0.5), hx_num("warmup", 20)},
      };
      for (int c = 0; c < 3; c++) {
         memcpy(xb, x0, 2 * S * sizeof(float));
         hx_job_reset(j);
         CHECK(hx_advance(dbc, j, xb, 1.0f, 0.0f, STEPS, caps[c], 2) == ASSAY_OK, "caps advance");
         for (uint32_t s = 0; s < 2; s++) {
            char pat[HX_MAX_STEPS + 1];
            const int n = cached_steps(j, s, STEPS, 1, pat);
            const int ok = c == 0 ? n > 0 && strstr(pat, "cc") == NULL : c == 1 ? n == 2 : n == 0;
            CHECK(ok, "%s: sample %u pattern %s", caps[c][1].key, s, pat);
         }
      }
      /* fn 2 bn 1: the always-run blocks are 0, 1 and 4. */
      const assay_option_t fb[3] = {hx_num("threshold", 0.3), hx_num("fn", 2), hx_num("bn", 1)};
      memcpy(xb, x0, 2 * S * sizeof(float));
      hx_job_reset(j);
      CHECK(hx_advance(dbc, j, xb, 1.0f, 0.0f, STEPS, fb, 3) == ASSAY_OK, "fn 2 bn 1: %s", hx_last_error);
      char pat[HX_MAX_STEPS + 1];
      int n = cached_steps(j, 0, STEPS, 3, pat), ok = 1;
      for (int i = 0; i < STEPS; i++) ok &= j->ran[i][0] == 3 || j->ran[i][0] == nb;
      printf("  fn 2 bn 1 threshold 0.3: %s\n", pat);
      CHECK(ok && n > 0, "fn 2 bn 1: cached steps run 3 blocks, others %u", nb);
      hx_job_free(j);
   }

   /* (5) Bad options. */
   {
      hx_job_t *j = hx_job_new(&hm, 1, prompts, G);
      struct {
         assay_option_t o[2];
         uint32_t n;
         const char *name;
      } bad[] = {
         {{hx_num("threshold", -1)}, 1, "\"threshold\""},
         {{hx_num("fn", 0)}, 1, "\"fn\""},
         {{hx_num("fn", 1.5)}, 1, "\"fn\""},
         {{hx_num("fn", 3), hx_num("bn", 2)}, 2, "\"fn\" (3) + \"bn\" (2)"},
         {{hx_num("fn", (double)nb)}, 1, "\"fn\""},
         {{hx_num("bn", -1)}, 1, "\"bn\""},
         {{hx_num("warmup", -2)}, 1, "\"warmup\""},
         {{hx_num("max_cached", -2)}, 1, "\"max_cached\""},
         {{hx_num("max_consecutive", 0.5)}, 1, "\"max_consecutive\""},
         {{{"threshold", ASSAY_OPTION_STRING, "0.1", 0}}, 1, "\"threshold\""},
      };
      for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
         memcpy(xb, x0, S * sizeof(float));
         hx_reports = 0;
         hx_last_error[0] = 0;
         hx_job_reset(j);
         assay_result_t rc = hx_advance(dbc, j, xb, 1.0f, 0.0f, STEPS, bad[k].o, bad[k].n);
         CHECK(rc == ASSAY_ERR_INVALID_ARGUMENT && hx_reports == 1 && strstr(hx_last_error, bad[k].name) != NULL &&
                  j->nfe == 0,
               "bad option %s = %g: rc %d, %d reports, \"%s\", %ld NFEs", bad[k].o[0].key, bad[k].o[0].number, rc,
               hx_reports, hx_last_error, j->nfe);
         if (k == 0 || k == 3) printf("  refused: %s\n", hx_last_error);
      }
      /* Unknown keys are ignored; instance options set defaults; bad instance options refuse. */
      const assay_option_t unknown = {"guidance_mode", ASSAY_OPTION_STRING, "x", 0};
      hx_job_reset(j);
      CHECK(hx_advance(dbc, j, xb, 1.0f, 0.5f, STEPS, &unknown, 1) == ASSAY_OK, "unknown key must be ignored");
      void *l2;
      const assay_option_t inst = hx_num("threshold", 0);
      const assay_plugin_t *d2 = hx_load(argv[2], "dbcache", &inst, 1, &l2);
      CHECK(d2 != NULL, "instance option threshold 0");
      if (d2) {
         hx_job_t *jj = hx_job_new(&hm, 2, prompts, G);
         memcpy(xa, x0, 2 * S * sizeof(float));
         memcpy(xb, x0, 2 * S * sizeof(float));
         hx_euler(jj, xa, 1.0f, 0.0f, STEPS);
         hx_advance(d2, jj, xb, 1.0f, 0.0f, STEPS, NULL, 0);
         CHECK(memcmp(xa, xb, 2 * S * sizeof(float)) == 0, "instance default threshold 0 must equal Euler");
         hx_job_free(jj);
         d2->destroy(d2);
      }
      const assay_plugin_t *entry_lib = NULL;
      (void)entry_lib;
      {
         const assay_plugin_entry_t *entry = dlsym(dlib, "assay_entry");
         const assay_plugin_factory_t *f = entry->get_factory(ASSAY_PLUGIN_FACTORY_ID);
         const assay_plugin_t *p3 = f->create_plugin(f, &hx_host, "dbcache");
         const assay_option_t badi = hx_num("warmup", -1);
         assay_options_t o = {1, &badi};
         hx_last_error[0] = 0;
         CHECK(p3->init(p3, &o) == ASSAY_ERR_INVALID_ARGUMENT && strstr(hx_last_error, "\"warmup\""),
               "bad instance option must refuse init: %s", hx_last_error);
         p3->destroy(p3);
      }
      hx_job_free(j);
   }

   /* (6) Budget refused by the prologue (and by evaluate in the fallback); cancellation. */
   {
      hx_job_t *j = hx_job_new(&hm, 2, prompts, G);
      for (int variant = 0; variant < 2; variant++) {
         j->offer_blocks = variant == 0;
         memcpy(xb, x0, 2 * S * sizeof(float));
         hx_job_reset(j);
         j->budget = 4 * 5; /* 5 guided steps of batch 2 */
         hx_reports = 0;
         assay_result_t rc = hx_advance(dbc, j, xb, 1.0f, 0.0f, STEPS, NULL, 0);
         CHECK(rc == ASSAY_ERR_BUDGET && hx_reports == 0 && j->nfe == 20,
               "%s budget refusal: rc %d, %d reports, %ld NFEs", variant == 0 ? "prologue" : "evaluate", rc,
               hx_reports, j->nfe);
      }
      j->offer_blocks = 1;
      j->budget = -1;
      hx_cancel_flag = 1;
      hx_job_reset(j);
      assay_result_t rc = hx_advance(dbc, j, xb, 1.0f, 0.0f, STEPS, NULL, 0);
      hx_cancel_flag = 0;
      CHECK(rc == ASSAY_ERR_CANCELLED && j->nfe == 0, "cancelled job: rc %d, %ld NFEs", rc, j->nfe);
      hx_job_free(j);
   }

   free(x0);
   free(xa);
   free(xb);
   dbc->destroy(dbc);
   hm.p->destroy(hm.p);
   printf("%d passed, %d failed\n", passed, failed);
   return failed == 0 ? 0 : 1;
}
