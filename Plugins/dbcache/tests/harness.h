/* harness.h: a minimal Assay host for the dbcache sampler (header-only, shared by
 * test_dbcache.c and sweep.c). It dlopens the shapes model plugin (id "shapes") and the dbcache
 * sampler plugin and plays the host's side of a guided `advance` call:
 *   assay_model_access_t          evaluate = guided velocity of the batch (one model call of
 *                                 rows = 2 x batch: positive rows first, then the same x under
 *                                 the empty prompt), v = neg + g * (pos - neg) in float;
 *   assay_model_blocks_access_t   prologue / block / epilogue over the model's
 *                                 assay.model-blocks/1 on all rows (epilogue guides the same
 *                                 way);
 *   assay_model_blocks_rows_t     block_rows: gathers the listed rows, runs the model's block
 *                                 on them alone, scatters them back (the model is batch
 *                                 invariant, so a listed row gets the bits of a full call);
 * with an NFE budget (prologue and evaluate cost `rows` NFEs and are refused with
 * ASSAY_ERR_BUDGET past it), FLOP counting from the blocks info and, per step (prologue) and
 * row, the number of middle blocks run: the sampler's cache pattern. */
#pragma once
#define _POSIX_C_SOURCE 200809L
#include <assay/assay.h>
#include <assay/ext/draft/blocks-rows.h>

#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HX_MAX_STEPS 256

static char hx_last_error[2048];
static int hx_reports;

static void hx_report(const assay_host_t *host, const assay_call_t *call, const char *message) {
   (void)host;
   (void)call;
   snprintf(hx_last_error, sizeof hx_last_error, "%s", message);
   hx_reports++;
}
static void hx_log(const assay_host_t *host, const assay_call_t *call, assay_log_level_t level,
                   const char *m) {
   (void)host;
   (void)call;
   (void)level;
   (void)m;
}
static int hx_cancel_flag;
static bool hx_cancelled(const assay_host_t *host, const assay_call_t *call) {
   (void)host;
   (void)call;
   return hx_cancel_flag != 0;
}
static const void *hx_host_ext(const assay_host_t *host, const char *id) {
   (void)host;
   (void)id;
   return NULL;
}

static const assay_host_t hx_host = {ASSAY_VERSION_INIT, NULL, "test_dbcache", "0", hx_host_ext,
                                     hx_log, hx_cancelled, hx_report};
static const assay_call_t hx_call = {&hx_host, 1, NULL};

/* Loads library `so` and creates + inits plugin `id` with `count` options. */
static const assay_plugin_t *hx_load(const char *so, const char *id, const assay_option_t *opts,
                                     uint32_t count, void **lib_out) {
   void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
   if (lib == NULL) {
      fprintf(stderr, "cannot dlopen %s: %s\n", so, dlerror());
      return NULL;
   }
   const assay_plugin_entry_t *entry = dlsym(lib, "assay_entry");
   if (entry == NULL || !entry->init(so))
      return NULL;
   const assay_plugin_factory_t *f = entry->get_factory(ASSAY_PLUGIN_FACTORY_ID);
   const assay_plugin_t *p = f ? f->create_plugin(f, &hx_host, id) : NULL;
   if (p == NULL)
      return NULL;
   assay_options_t o = {count, count ? opts : NULL};
   if (p->init(p, &o) != ASSAY_OK) {
      fprintf(stderr, "%s init: %s\n", id, hx_last_error);
      p->destroy(p);
      return NULL;
   }
   *lib_out = lib;
   return p;
}

typedef struct hx_model {
   const assay_plugin_t *p;
   const assay_model_ext_t *m;
   const assay_model_blocks_ext_t *bx;
   assay_model_info_t info;
   assay_model_blocks_info_t bi;
   size_t S, CS; /* floats per latent sample, per condition */
} hx_model_t;

static int hx_model_open(hx_model_t *hm, const char *so) {
   void *lib;
   memset(hm, 0, sizeof *hm);
   hm->p = hx_load(so, "shapes", NULL, 0, &lib);
   if (hm->p == NULL)
      return -1;
   hm->m = hm->p->get_extension(hm->p, ASSAY_EXT_MODEL);
   hm->bx = hm->p->get_extension(hm->p, ASSAY_EXT_MODEL_BLOCKS);
   if (hm->m == NULL || hm->bx == NULL)
      return -1;
   hm->m->get_info(hm->p, &hm->info);
   hm->bx->get_info(hm->p, &hm->bi);
   hm->S = (size_t)hm->info.latent_channels * hm->info.latent_height * hm->info.latent_width;
   hm->CS = hm->info.condition_size;
   return 0;
}

/* One bound advance call: the host data behind the three access structs. */
typedef struct hx_job {
   const hx_model_t *hm;
   uint32_t batch, rows;
   float g;
   float *cond;            /* rows * CS: prompts, then "" */
   float *xs, *ts, *vs;    /* rows * S, rows, rows * S */
   float *ch, *cc;         /* compact rows for block_rows */
   int offer_blocks, offer_rows;
   long budget;            /* NFEs allowed; < 0 = unlimited */
   long nfe;
   double flops, block_flops; /* all parts; middle blocks only */
   int step;               /* prologue calls - 1 */
   long block_rows_calls;
   int bad_rows;           /* block_rows got an invalid list */
   uint8_t ran[HX_MAX_STEPS][64]; /* middle blocks run, per step and row (rows <= 64) */
   assay_model_access_t access;
   assay_model_blocks_access_t bacc;
   assay_model_blocks_rows_t brows;
} hx_job_t;

static void hx_guide(const hx_job_t *j, float *v) {
   const size_t n = (size_t)j->batch * j->hm->S;
   if (j->rows == j->batch) {
      memcpy(v, j->vs, n * sizeof *v);
      return;
   }
   const float *pos = j->vs, *neg = j->vs + n;
   for (size_t i = 0; i < n; i++)
      v[i] = neg[i] + j->g * (pos[i] - neg[i]);
}

static void hx_spread(hx_job_t *j, const float *x, float t) {
   const size_t n = (size_t)j->batch * j->hm->S;
   for (uint32_t c = 0; c < j->rows / j->batch; c++)
      memcpy(j->xs + c * n, x, n * sizeof *x);
   for (uint32_t r = 0; r < j->rows; r++)
      j->ts[r] = t;
}

static assay_result_t hx_evaluate(const assay_model_access_t *a, const float *x, float t, float *v) {
   hx_job_t *j = a->host_data;
   if (j->budget >= 0 && j->nfe + (long)j->rows > j->budget)
      return ASSAY_ERR_BUDGET;
   j->nfe += j->rows;
   const assay_model_blocks_info_t *bi = &j->hm->bi;
   j->flops += j->rows * (bi->prologue_flops + bi->block_count * bi->block_flops + bi->epilogue_flops);
   j->block_flops += (double)j->rows * bi->block_count * bi->block_flops;
   hx_spread(j, x, t);
   assay_result_t rc = j->hm->m->velocity(j->hm->p, &hx_call, j->rows, j->xs, j->ts, j->cond, j->vs);
   if (rc == ASSAY_OK)
      hx_guide(j, v);
   return rc;
}

static assay_result_t hx_prologue(const assay_model_blocks_access_t *a, const float *x, float t,
                                  float *hidden, float *context) {
   hx_job_t *j = a->host_data;
   if (j->budget >= 0 && j->nfe + (long)j->rows > j->budget)
      return ASSAY_ERR_BUDGET;
   j->nfe += j->rows;
   j->step++;
   j->flops += j->rows * j->hm->bi.prologue_flops;
   hx_spread(j, x, t);
   return j->hm->bx->prologue(j->hm->p, &hx_call, j->rows, j->xs, j->ts, j->cond, hidden, context);
}

static void hx_count(hx_job_t *j, uint32_t count, const uint32_t *list) {
   j->flops += count * j->hm->bi.block_flops;
   j->block_flops += count * j->hm->bi.block_flops;
   if (j->step >= 0 && j->step < HX_MAX_STEPS)
      for (uint32_t i = 0; i < count; i++)
         j->ran[j->step][list ? list[i] : i]++;
}

static assay_result_t hx_block(const assay_model_blocks_access_t *a, uint32_t index, float *hidden,
                               const float *context) {
   hx_job_t *j = a->host_data;
   hx_count(j, j->rows, NULL);
   return j->hm->bx->block(j->hm->p, &hx_call, index, j->rows, hidden, context);
}

static assay_result_t hx_block_rows(const assay_model_blocks_rows_t *a, uint32_t index, uint32_t count,
                                    const uint32_t *rows, float *hidden, const float *context) {
   hx_job_t *j = a->host_data;
   const size_t H = j->hm->bi.hidden_size, CX = j->hm->bi.context_size;
   uint64_t seen = 0;
   for (uint32_t i = 0; i < count; i++) {
      if (rows[i] >= j->rows || (seen >> rows[i] & 1u)) {
         j->bad_rows++;
         return ASSAY_ERR_INVALID_ARGUMENT;
      }
      seen |= (uint64_t)1 << rows[i];
   }
   if (count == 0)
      return ASSAY_OK;
   j->block_rows_calls++;
   hx_count(j, count, rows);
   for (uint32_t i = 0; i < count; i++) {
      memcpy(j->ch + i * H, hidden + rows[i] * H, H * sizeof(float));
      memcpy(j->cc + i * CX, context + rows[i] * CX, CX * sizeof(float));
   }
   assay_result_t rc = j->hm->bx->block(j->hm->p, &hx_call, index, count, j->ch, j->cc);
   for (uint32_t i = 0; rc == ASSAY_OK && i < count; i++)
      memcpy(hidden + rows[i] * H, j->ch + i * H, H * sizeof(float));
   return rc;
}

static assay_result_t hx_epilogue(const assay_model_blocks_access_t *a, const float *hidden,
                                  const float *context, float *v) {
   hx_job_t *j = a->host_data;
   j->flops += j->rows * j->hm->bi.epilogue_flops;
   assay_result_t rc = j->hm->bx->epilogue(j->hm->p, &hx_call, j->rows, hidden, context, j->vs);
   if (rc == ASSAY_OK)
      hx_guide(j, v);
   return rc;
}

static const void *hx_access_ext(const assay_model_access_t *a, const char *id) {
   hx_job_t *j = a->host_data;
   if (id == NULL)
      return NULL;
   if (j->offer_blocks && strcmp(id, ASSAY_EXT_MODEL_BLOCKS_ACCESS) == 0)
      return &j->bacc;
   if (j->offer_rows && strcmp(id, ASSAY_EXT_MODEL_BLOCKS_ROWS_DRAFT) == 0)
      return &j->brows;
   return NULL;
}

/* A guided job of `batch` samples with prompts[i] (guidance g against ""). */
static hx_job_t *hx_job_new(const hx_model_t *hm, uint32_t batch, const char *const *prompts, float g) {
   hx_job_t *j = calloc(1, sizeof *j);
   j->hm = hm;
   j->batch = batch;
   j->rows = g != 1.0f ? 2 * batch : batch;
   j->g = g;
   const size_t H = hm->bi.hidden_size, CX = hm->bi.context_size;
   j->cond = malloc((size_t)j->rows * hm->CS * sizeof(float));
   j->xs = malloc((size_t)j->rows * hm->S * sizeof(float));
   j->ts = malloc(j->rows * sizeof(float));
   j->vs = malloc((size_t)j->rows * hm->S * sizeof(float));
   j->ch = malloc((size_t)j->rows * H * sizeof(float));
   j->cc = malloc((size_t)j->rows * (CX ? CX : 1) * sizeof(float));
   for (uint32_t i = 0; i < batch; i++) {
      if (hm->m->encode(hm->p, &hx_call, prompts[i], j->cond + i * hm->CS) != ASSAY_OK)
         fprintf(stderr, "encode \"%s\": %s\n", prompts[i], hx_last_error);
      if (j->rows > batch)
         hm->m->encode(hm->p, &hx_call, "", j->cond + (batch + i) * hm->CS);
   }
   j->offer_blocks = j->offer_rows = 1;
   j->budget = -1;
   j->step = -1;
   j->access = (assay_model_access_t){j, batch, hm->info.latent_channels, hm->info.latent_height,
                                      hm->info.latent_width, j->rows, hx_evaluate, hx_access_ext};
   j->bacc = (assay_model_blocks_access_t){j, hm->bi, j->rows, 0, hx_prologue, hx_block, hx_epilogue};
   j->brows = (assay_model_blocks_rows_t){j, hx_block_rows};
   return j;
}

static inline void hx_job_reset(hx_job_t *j) {
   j->nfe = 0;
   j->flops = j->block_flops = 0;
   j->step = -1;
   j->block_rows_calls = 0;
   j->bad_rows = 0;
   memset(j->ran, 0, sizeof j->ran);
}

static void hx_job_free(hx_job_t *j) {
   if (j == NULL)
      return;
   free(j->cond);
   free(j->xs);
   free(j->ts);
   free(j->vs);
   free(j->ch);
   free(j->cc);
   free(j);
}

/* The host's own Euler on its segment times (Schedule.segment, shift 1): [from] + the grid
 * points 1 - i / steps strictly between + [to]; x += (t' - t) * v. */
static assay_result_t hx_euler(hx_job_t *j, float *x, float t_from, float t_to, int steps) {
   float times[HX_MAX_STEPS + 2];
   int n = 0;
   times[n++] = t_from;
   for (int i = 0; i <= steps && n < HX_MAX_STEPS; i++) {
      const float g = (float)(1.0 - (double)i / steps);
      if (g < t_from && g > t_to)
         times[n++] = g;
   }
   times[n++] = t_to;
   const size_t count = (size_t)j->batch * j->hm->S;
   float *v = malloc(count * sizeof *v);
   assay_result_t rc = ASSAY_OK;
   for (int i = 0; i + 1 < n && rc == ASSAY_OK; i++) {
      rc = hx_evaluate(&j->access, x, times[i], v);
      const float dt = times[i + 1] - times[i];
      for (size_t q = 0; rc == ASSAY_OK && q < count; q++)
         x[q] += dt * v[q];
   }
   free(v);
   return rc;
}

/* Gaussian noise for `count` floats from `seed` (Box-Muller on an LCG). */
static void hx_noise(float *x, size_t count, unsigned seed) {
   unsigned g = seed * 2654435761u + 12345u;
   for (size_t i = 0; i < count; i += 2) {
      g = g * 1664525u + 1013904223u;
      const double u1 = ((g >> 8) + 1.0) / 16777217.0;
      g = g * 1664525u + 1013904223u;
      const double u2 = (g >> 8) / 16777216.0;
      x[i] = (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
      if (i + 1 < count)
         x[i + 1] = (float)(sqrt(-2 * log(u1)) * sin(6.283185307179586 * u2));
   }
}

/* Runs the sampler's advance on job j with `count` options plus "steps". */
static assay_result_t hx_advance(const assay_plugin_t *sampler, hx_job_t *j, float *x, float t_from,
                                 float t_to, int steps, const assay_option_t *opts, uint32_t count) {
   assay_option_t all[16];
   all[0] = (assay_option_t){"steps", ASSAY_OPTION_NUMBER, NULL, (double)steps};
   for (uint32_t i = 0; i < count && i < 15; i++)
      all[i + 1] = opts[i];
   assay_options_t o = {count + 1, all};
   const assay_sampler_ext_t *sx = sampler->get_extension(sampler, ASSAY_EXT_SAMPLER);
   return sx->advance(sampler, &hx_call, &j->access, x, t_from, t_to, &o);
}

static assay_option_t hx_num(const char *key, double value) {
   return (assay_option_t){key, ASSAY_OPTION_NUMBER, NULL, value};
}
