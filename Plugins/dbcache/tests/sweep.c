/* sweep.c: what the dbcache settings save and cost on the shapes model (make -C Plugins
 * dbcache-sweep; DBC_SWEEP_ARGS passes the options below).
 *
 *   sweep shapes.so dbcache.so shapes-checker.so benchmark_prompts.txt
 *         [--prompts N] [--seeds K] [--steps 20] [SETTING...]
 *   SETTING = threshold:fn:bn:warmup[:max_cached[:max_consecutive]], e.g. 0.12:1:0:4
 *
 * N prompts spread evenly over benchmark_prompts.txt (all six categories), K seeds each, 20
 * guided steps (1.75 against ""), batches of 16 through the harness host (harness.h). For Euler
 * and each setting: the middle-block FLOP ratio (blocks run / blocks of uncached sampling) and
 * the total FLOP ratio (prologue + blocks + epilogue), the mean and max |pixel difference| to
 * Euler's image (0..255), the shapes-checker pass rate (score 1) and how many images changed
 * verdict.
 *
 * Measured (48 prompts x 4 seeds = 192 images, 20 steps; Euler passes 64.1%):
 *   (filled in from the run quoted in dbcache.c's header comment) */
#include "harness.h"

#include <time.h>

typedef struct setting {
   double threshold;
   int fn, bn, warmup, max_cached, max_consecutive;
} setting_t;

static const setting_t defaults[] = {
   {0.04, 1, 0, 4, -1, -1}, {0.08, 1, 0, 4, -1, -1}, {0.12, 1, 0, 4, -1, -1}, {0.2, 1, 0, 4, -1, -1},
   {0.3, 1, 0, 4, -1, -1},  {0.2, 1, 0, 2, -1, -1},  {0.2, 1, 0, 6, -1, -1},  {0.3, 1, 0, 6, -1, -1},
   {0.2, 2, 0, 4, -1, -1},  {0.3, 2, 0, 4, -1, -1},  {0.3, 1, 0, 4, -1, 2},
};

static double now(void) {
   struct timespec ts;
   clock_gettime(CLOCK_MONOTONIC, &ts);
   return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
   if (argc < 5) {
      fprintf(stderr, "usage: %s shapes.so dbcache.so shapes-checker.so prompts.txt [--prompts N] [--seeds K] "
                      "[--steps S] [threshold:fn:bn:warmup[:max_cached[:max_consecutive]]...]\n", argv[0]);
      return 2;
   }
   setvbuf(stdout, NULL, _IONBF, 0);
   int n_prompts = 48, n_seeds = 4, steps = 20;
   setting_t settings[64];
   int n_settings = 0;
   for (int i = 5; i < argc; i++) {
      if (strcmp(argv[i], "--prompts") == 0 && i + 1 < argc) n_prompts = atoi(argv[++i]);
      else if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) n_seeds = atoi(argv[++i]);
      else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) steps = atoi(argv[++i]);
      else if (n_settings < 64) {
         setting_t s = {0.08, 1, 0, 4, -1, -1};
         sscanf(argv[i], "%lf:%d:%d:%d:%d:%d", &s.threshold, &s.fn, &s.bn, &s.warmup, &s.max_cached,
                &s.max_consecutive);
         settings[n_settings++] = s;
      }
   }
   if (n_settings == 0) {
      n_settings = (int)(sizeof defaults / sizeof defaults[0]);
      memcpy(settings, defaults, sizeof defaults);
   }

   hx_model_t hm;
   void *l1, *l2;
   if (hx_model_open(&hm, argv[1]) != 0) return 1;
   const assay_plugin_t *dbc = hx_load(argv[2], "dbcache", NULL, 0, &l1);
   const assay_plugin_t *chk = hx_load(argv[3], "shapes-checker", NULL, 0, &l2);
   if (dbc == NULL || chk == NULL) return 1;
   const assay_verifier_ext_t *vx = chk->get_extension(chk, ASSAY_EXT_VERIFIER);

   /* Prompts: N lines spread over the file ("category<TAB>prompt"). */
   char lines[1024][160];
   int n_lines = 0;
   FILE *f = fopen(argv[4], "r");
   if (f == NULL) return 1;
   char buf[512];
   while (n_lines < 1024 && fgets(buf, sizeof buf, f)) {
      char *tab = strchr(buf, '\t'), *p = tab ? tab + 1 : buf;
      p[strcspn(p, "\r\n")] = 0;
      p[sizeof lines[0] - 1 < strlen(p) ? sizeof lines[0] - 1 : strlen(p)] = 0;
      memcpy(lines[n_lines++], p, strlen(p) + 1);
   }
   fclose(f);
   if (n_prompts > n_lines) n_prompts = n_lines;
   const int total = n_prompts * n_seeds;
   const char **prompt = malloc(total * sizeof *prompt);
   for (int i = 0; i < total; i++) prompt[i] = lines[(long)(i / n_seeds) * n_lines / n_prompts];

   const size_t S = hm.S;
   const uint32_t W = hm.info.image_width, Hh = hm.info.image_height;
   float *x0 = malloc(total * S * sizeof(float)), *x = malloc(total * S * sizeof(float));
   uint8_t *ref = malloc(total * S), *img = malloc(total * S);
   int *ref_pass = malloc(total * sizeof(int));
   for (int i = 0; i < total; i++) hx_noise(x0 + i * S, S, 7000 + i);
   enum { BATCH = 16 };

   printf("%d prompts x %d seeds = %d images, %d steps, guidance 1.75; %u middle blocks\n", n_prompts, n_seeds,
          total, steps, hm.bi.block_count);
   printf("%-28s %8s %8s %8s %7s %6s %7s %6s %6s\n", "setting (thr:fn:bn:warm:caps)", "mid", "total", "speedup",
          "meanpx", "maxpx", "pass%", "dpass", "flips");
   for (int k = -1; k < n_settings; k++) {
      double t0 = now(), flops = 0, bflops = 0, full = 0, bfull = 0;
      memcpy(x, x0, total * S * sizeof(float));
      for (int b0 = 0; b0 < total; b0 += BATCH) {
         const uint32_t nb = (uint32_t)(total - b0 < BATCH ? total - b0 : BATCH);
         hx_job_t *j = hx_job_new(&hm, nb, prompt + b0, 1.75f);
         float *xb = x + b0 * S;
         if (k < 0) {
            hx_euler(j, xb, 1.0f, 0.0f, steps);
         } else {
            const setting_t *s = &settings[k];
            assay_option_t o[6] = {hx_num("threshold", s->threshold), hx_num("fn", s->fn), hx_num("bn", s->bn),
                                   hx_num("warmup", s->warmup), hx_num("max_cached", s->max_cached),
                                   hx_num("max_consecutive", s->max_consecutive)};
            if (hx_advance(dbc, j, xb, 1.0f, 0.0f, steps, o, 6) != ASSAY_OK) {
               printf("advance failed: %s\n", hx_last_error);
               return 1;
            }
         }
         const assay_model_blocks_info_t *bi = &hm.bi;
         flops += j->flops;
         bflops += j->block_flops;
         full += (double)steps * j->rows * (bi->prologue_flops + bi->block_count * bi->block_flops + bi->epilogue_flops);
         bfull += (double)steps * j->rows * bi->block_count * bi->block_flops;
         hx_job_free(j);
      }
      uint8_t *out = k < 0 ? ref : img;
      hm.m->decode(hm.p, &hx_call, (uint32_t)total, x, out);
      int pass = 0, flips = 0;
      for (int i = 0; i < total; i++) {
         assay_image_t im = {W, Hh, W * 3, out + i * S};
         double score = 0;
         vx->score(chk, &hx_call, prompt[i], 1, &im, &score, NULL);
         const int ok = score >= 1.0;
         if (k < 0) ref_pass[i] = ok;
         pass += ok;
         flips += ok != ref_pass[i];
      }
      double sum = 0;
      int mx = 0;
      for (size_t q = 0; q < total * S; q++) {
         int d = abs((int)out[q] - (int)ref[q]);
         sum += d;
         if (d > mx) mx = d;
      }
      char name[64];
      if (k < 0)
         snprintf(name, sizeof name, "euler");
      else
         snprintf(name, sizeof name, "%.2f:%d:%d:%d:%d:%d", settings[k].threshold, settings[k].fn, settings[k].bn,
                  settings[k].warmup, settings[k].max_cached, settings[k].max_consecutive);
      static int euler_pass;
      if (k < 0) euler_pass = pass;
      printf("%-28s %8.3f %8.3f %7.2fx %7.2f %6d %6.1f%% %+5.1f %6d   (%.1f s)\n", name, bflops / bfull, flops / full,
             bfull / bflops, sum / (double)(total * S), mx, 100.0 * pass / total,
             100.0 * (pass - euler_pass) / total, flips, now() - t0);
   }
   return 0;
}
