/* dbcache.c: a DBCache-style caching Euler sampler (id "dbcache"), with the cache decision
 * made per sample of the batch.
 *
 * The method. Euler on uniform steps from t_from down to t_to (dx/dt = v):
 *   n = max(1, ceil(steps * (t_from - t_to) - 1e-4)) steps ("steps" is the job's step count
 *   for the whole 1 -> 0 path). When t_from and t_to both lie (within 1e-6) on the job grid
 *   g_j = (float)(1 - j / steps) (whole `steps`), the inner times are those grid points and
 *   the ends are t_from and t_to exactly, so the path equals the host's built-in Euler on a
 *   uniform schedule (schedule shift 1) bit for bit; otherwise
 *   t_i = (float)(t_from + (t_to - t_from) * i / n), with exact ends.
 *   Step: x += (t_{i+1} - t_i) * v (float), v the guided velocity at t_i.
 *
 * The cache (DBCache of cache-dit, shared/REFERENCE.md). Through the host's block-level
 * access (ext/blocks.h, "assay.model-blocks-access/1") and its draft row extension
 * (ext/draft/blocks-rows.h), every step runs: prologue(x, t) -> hidden, context for all rows;
 * the first `fn` middle blocks on all rows; then per sample s (s owns rows c * batch + s for
 * every condition c):
 *   R_s   = hidden after the first fn blocks - hidden before them, over s's rows;
 *   rel_s = mean|R_prev_s - R_s| / mean|R_prev_s|   (R_prev_s: R_s of s's last miss).
 *   s is CACHED when rel_s < threshold, the step index (counted from 0 within this advance
 *   call) is >= warmup, s has a stored middle residual from an earlier miss, and the caps
 *   allow it (cached steps of s < max_cached, consecutive cached steps of s <
 *   max_consecutive; -1 = no cap). Cached: hidden_s += M_s (the stored middle residual).
 *   Missed: the middle blocks fn .. block_count - bn - 1 run on s's rows only (block_rows),
 *   then M_s = hidden after the middle - hidden before it and R_prev_s = R_s are stored (as
 *   cache-dit does: residuals are stored on a miss only, so R_prev is the last miss's).
 *   Then the last `bn` blocks run on all rows, the epilogue gives the guided v of the batch,
 *   and the Euler update follows. threshold 0 never caches (rel < 0 is impossible): every
 *   block runs in order, which by the blocks.h contract equals `evaluate` bit for bit.
 *
 * Why per sample. cache-dit and TeaCache reduce rel over the whole batch and cache every
 * sample or none. In a search batch the candidates are unrelated (other seeds, prompts,
 * times since their last branch): one may be ready to reuse its residual while its neighbour
 * changes fast, and a batch-wide decision would make a sample's image depend on which other
 * candidates share its batch. Here every decision, residual and counter belongs to one
 * sample, and block_rows gives a listed row the bits of a full call, so a sample's result is
 * the same bits alone or in any batch (the host may batch and replay freely).
 *
 * NFE accounting. Assay budgets count evaluations: every step's prologue costs the access's
 * nfe_per_evaluation NFEs whether or not the sample is then cached (ext/blocks.h). The
 * compute saved is in FLOPs: the host counts the blocks actually run (block, block_rows)
 * from the *_flops fields and reports the ratio.
 *
 * Defaults, measured on the shapes model (5 middle blocks, 20 steps, guidance 1.75 against "",
 * shapes-checker pass rate over tools/shapes/benchmark_prompts.txt; the sweep table is in
 * Plugins/dbcache/tests/sweep.c): fn 1, bn 0, warmup 4, threshold 0.4, no caps.
 *   fn 1 bn 0: cache-dit's Fn 8 / Bn 0 is for 57-block FLUX; with 5 blocks fn 1 leaves 4 of 5
 *     to skip (a cached step runs 1 block); fn 2 caps the saving at 3/5 and measured 1.56x
 *     at threshold 0.4 against 1.92x for fn 1.
 *   threshold 0.4: cache-dit's 0.08 almost never caches on this small model: 0.08 saves 2%,
 *     0.2 1.48x, 0.3 1.75x, 0.4 1.92x, 0.5 2.07x of middle-block FLOPs, with no pass-rate
 *     change at 0.3-0.5 (0 verdicts flipped of 96 images; mean |pixel - Euler's| 0.16-0.31
 *     of 255). 0.4 is the smallest measured threshold past the 1.8x goal with margin.
 *   warmup 4 (20% of the steps, like cache-dit's 8 of ~40): warmup 2 saves more (2.09x at
 *     0.4) but flipped one verdict; warmup 6 falls to 1.79x.
 *   Total FLOPs (prologue and epilogue always run, 52% of a full evaluation here) fall less:
 *     0.77 of Euler's at the defaults.
 *
 * Fallback. When the model access has no "assay.model-blocks-access/1", or the host has no
 * "assay.model-blocks-rows.draft/1" (needed for per-sample decisions), or the model has
 * fewer than 2 middle blocks, the sampler runs plain Euler through model->evaluate (same
 * times, same bits as threshold 0), silently.
 *
 * Options (instance options in init give the defaults; per-call options override them;
 * unknown keys are ignored, the host passes the job's sampler_options):
 *   "steps"           number 1..1e6 (the job's; advance options only; default 20)
 *   "threshold"       number 0..1e6 (default 0.4); 0 never caches
 *   "fn"              whole number >= 1 (default 1): first blocks always run
 *   "bn"              whole number >= 0 (default 0): last blocks always run;
 *                     fn + bn <= block_count - 1 (checked against the bound model)
 *   "warmup"          whole number >= 0 (default 4): first steps of a call never cached
 *   "max_cached"      whole number >= -1 (default -1 = no cap): cached steps per sample
 *   "max_consecutive" whole number >= -1 (default -1 = no cap): consecutive cached steps
 *
 * Refusals. ASSAY_ERR_BUDGET or ASSAY_ERR_CANCELLED (or any error) from prologue, evaluate,
 * block, block_rows or epilogue: stop at once and return that code without report_error (the
 * host or the model already gave the reason). host->is_cancelled is polled between steps.
 *
 * Threads: advance runs on many job threads at once for one instance. The instance holds
 * only the defaults, written in init (main thread) and read-only afterwards; every buffer
 * and counter is allocated per call. No global mutable state. */

#include <assay/assay.h>
#include <assay/ext/draft/blocks-rows.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct dbc_params {
   double threshold;
   long fn, bn, warmup, max_cached, max_consecutive;
} dbc_params_t;

typedef struct dbc_instance {
   assay_plugin_t plugin;    /* what the host sees; plugin_data points to this struct */
   const assay_host_t *host; /* borrowed from create_plugin; outlives the instance */
   dbc_params_t defaults;    /* from init; read-only afterwards */
} dbc_instance_t;

static const dbc_params_t dbc_builtin = {
   .threshold = 0.4, .fn = 1, .bn = 0, .warmup = 4, .max_cached = -1, .max_consecutive = -1,
};

static const dbc_instance_t *dbc_self(const assay_plugin_t *plugin) {
   return (const dbc_instance_t *)plugin->plugin_data;
}

/* Formats a reason and hands it to the host; call right before returning an error.
 * `call` is NULL in init, which receives no call (see host.h). */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void dbc_fail(const dbc_instance_t *self, const assay_call_t *call, const char *fmt, ...) {
   char message[512];
   va_list args;
   va_start(args, fmt);
   vsnprintf(message, sizeof message, fmt, args);
   va_end(args);
   if (self->host != NULL && self->host->report_error != NULL)
      self->host->report_error(self->host, call, message);
}

/* One whole-number option: its key, its place in dbc_params_t, its smallest value and what
 * the value means (for the message). */
typedef struct dbc_whole_option {
   const char *key;
   size_t offset;
   long min;
   const char *meaning;
} dbc_whole_option_t;

static const dbc_whole_option_t dbc_whole_options[] = {
   {"fn", offsetof(dbc_params_t, fn), 1, "the first blocks that always run"},
   {"bn", offsetof(dbc_params_t, bn), 0, "the last blocks that always run"},
   {"warmup", offsetof(dbc_params_t, warmup), 0, "the first steps that are never cached"},
   {"max_cached", offsetof(dbc_params_t, max_cached), -1,
    "cached steps per sample; -1 = no cap"},
   {"max_consecutive", offsetof(dbc_params_t, max_consecutive), -1,
    "consecutive cached steps per sample; -1 = no cap"},
};

#define DBC_WHOLE_MAX 1000000.0

/* Reads the cache options present in `options` into *p (absent keys leave *p alone). */
static assay_result_t dbc_read_params(const dbc_instance_t *self, const assay_call_t *call,
                                      const assay_options_t *options, dbc_params_t *p) {
   for (uint32_t i = 0; options != NULL && i < options->count; i++) {
      const assay_option_t *opt = &options->items[i];
      if (opt->key == NULL)
         continue;
      if (strcmp(opt->key, "threshold") == 0) {
         if (opt->type != ASSAY_OPTION_NUMBER || !(opt->number >= 0.0 && opt->number <= 1e6)) {
            dbc_fail(self, call,
                     "dbcache: option \"threshold\" must be a number from 0 to 1e6 (the "
                     "relative L1 change of the first blocks' residual below which a sample "
                     "reuses its cached middle residual; 0 never caches; default 0.4)%s",
                     opt->type == ASSAY_OPTION_NUMBER ? "" : ", not a string");
            return ASSAY_ERR_INVALID_ARGUMENT;
         }
         p->threshold = opt->number;
         continue;
      }
      for (size_t k = 0; k < sizeof dbc_whole_options / sizeof dbc_whole_options[0]; k++) {
         const dbc_whole_option_t *w = &dbc_whole_options[k];
         if (strcmp(opt->key, w->key) != 0)
            continue;
         if (opt->type != ASSAY_OPTION_NUMBER || !(opt->number >= (double)w->min) ||
             !(opt->number <= DBC_WHOLE_MAX) || opt->number != floor(opt->number)) {
            dbc_fail(self, call,
                     "dbcache: option \"%s\" must be a whole number from %ld to %.0f (%s)%s",
                     w->key, w->min, DBC_WHOLE_MAX, w->meaning,
                     opt->type == ASSAY_OPTION_NUMBER ? "" : ", not a string");
            return ASSAY_ERR_INVALID_ARGUMENT;
         }
         *(long *)((char *)p + w->offset) = (long)opt->number;
      }
   }
   return ASSAY_OK;
}

/* [main-thread] Instance options set the defaults for every job. */
static assay_result_t dbc_init(const assay_plugin_t *plugin, const assay_options_t *options) {
   dbc_instance_t *self = (dbc_instance_t *)plugin->plugin_data;
   self->defaults = dbc_builtin;
   return dbc_read_params(self, NULL, options, &self->defaults);
}

static void dbc_destroy(const assay_plugin_t *plugin) {
   free(plugin->plugin_data);
}

/* The step times t[0..n] (n + 1 floats, caller-owned) from t_from down to t_to; see the top
 * of the file. */
static void dbc_times(double steps, float t_from, float t_to, uint32_t n, float *t) {
   t[0] = t_from;
   t[n] = t_to;
   if (steps == floor(steps)) {
      const double jf = floor((1.0 - (double)t_from) * steps + 0.5);
      const double jt = floor((1.0 - (double)t_to) * steps + 0.5);
      const float gf = (float)(1.0 - jf / steps), gt = (float)(1.0 - jt / steps);
      if (fabsf(gf - t_from) <= 1e-6f && fabsf(gt - t_to) <= 1e-6f && jt - jf == (double)n) {
         for (uint32_t i = 1; i < n; i++)
            t[i] = (float)(1.0 - (jf + i) / steps);
         return;
      }
   }
   for (uint32_t i = 1; i < n; i++)
      t[i] = (float)(t_from + ((double)t_to - t_from) * i / n);
}

/* Plain Euler through model->evaluate: the fallback. */
static assay_result_t dbc_euler(const dbc_instance_t *self, const assay_call_t *call,
                                const assay_model_access_t *model, float *x, const float *t,
                                uint32_t n, size_t count) {
   float *v = malloc(count * sizeof *v);
   if (v == NULL) {
      dbc_fail(self, call, "dbcache: out of memory allocating %zu floats; use a smaller batch",
               count);
      return ASSAY_ERR_NO_MEMORY;
   }
   assay_result_t rc = ASSAY_OK;
   for (uint32_t s = 0; s < n; s++) {
      if (self->host->is_cancelled(self->host, call)) {
         dbc_fail(self, call, "dbcache: job cancelled after %u of %u steps", s, n);
         rc = ASSAY_ERR_CANCELLED;
         break;
      }
      rc = model->evaluate(model, x, t[s], v);
      if (rc != ASSAY_OK)
         break; /* the host's code (budget, cancel...), already explained: no report */
      const float dt = t[s + 1] - t[s];
      for (size_t j = 0; j < count; j++)
         x[j] += dt * v[j];
   }
   free(v);
   return rc;
}

/* Per-sample cache state. */
typedef struct dbc_sample {
   int stored;           /* has R_prev and M from an earlier miss */
   int cached_now;       /* decision at the current step */
   long cached_count;    /* cached steps so far */
   long consecutive;     /* cached steps since the last miss */
} dbc_sample_t;

/* Euler with the per-sample DBCache through the blocks access. */
static assay_result_t dbc_cached(const dbc_instance_t *self, const assay_call_t *call,
                                 const assay_model_access_t *model,
                                 const assay_model_blocks_access_t *ba,
                                 const assay_model_blocks_rows_t *br, const dbc_params_t *p,
                                 float *x, const float *t, uint32_t n, size_t count) {
   const uint32_t batch = model->batch, rows = ba->rows, nb = ba->info.block_count;
   const size_t H = ba->info.hidden_size, CX = ba->info.context_size;
   if (rows < batch || rows % batch != 0 || H == 0 ||
       H > SIZE_MAX / sizeof(float) / 4 / rows || CX > SIZE_MAX / sizeof(float) / rows) {
      dbc_fail(self, call, "dbcache: the blocks access has %u rows of %zu hidden floats for a "
                           "batch of %u (host bug)", rows, H, batch);
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   if ((uint64_t)p->fn + (uint64_t)p->bn > (uint64_t)nb - 1) {
      dbc_fail(self, call,
               "dbcache: options \"fn\" (%ld) + \"bn\" (%ld) must be at most %u, the model's "
               "%u middle blocks minus one (at least one block must be cacheable)",
               p->fn, p->bn, nb - 1, nb);
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   const uint32_t conditions = rows / batch;
   const uint32_t mid_from = (uint32_t)p->fn, mid_to = nb - (uint32_t)p->bn; /* [from, to) */
   const size_t total = (size_t)rows * H;

   float *hidden = malloc(total * sizeof(float));
   float *before = malloc(total * sizeof(float));
   float *r_prev = malloc(total * sizeof(float));
   float *m_res = malloc(total * sizeof(float));
   float *context = malloc((CX > 0 ? (size_t)rows * CX : 1) * sizeof(float));
   float *v = malloc(count * sizeof(float));
   uint32_t *list = malloc((size_t)rows * sizeof(uint32_t));
   dbc_sample_t *st = calloc(batch, sizeof *st);
   assay_result_t rc = ASSAY_OK;
   if (!hidden || !before || !r_prev || !m_res || !context || !v || !list || !st) {
      dbc_fail(self, call, "dbcache: out of memory allocating the cache of %u rows x %zu "
                           "floats; use a smaller batch", rows, H);
      rc = ASSAY_ERR_NO_MEMORY;
      goto done;
   }

   for (uint32_t s = 0; s < n && rc == ASSAY_OK; s++) {
      if (self->host->is_cancelled(self->host, call)) {
         dbc_fail(self, call, "dbcache: job cancelled after %u of %u steps", s, n);
         rc = ASSAY_ERR_CANCELLED;
         break;
      }
      rc = ba->prologue(ba, x, t[s], hidden, context);
      if (rc != ASSAY_OK)
         break; /* budget, cancel...: the host's reason stands */

      /* First fn blocks on every row; R = their residual, into `before`. */
      memcpy(before, hidden, total * sizeof(float));
      for (uint32_t b = 0; b < mid_from && rc == ASSAY_OK; b++)
         rc = ba->block(ba, b, hidden, context);
      if (rc != ASSAY_OK)
         break;

      /* Per-sample decision on its own rows. */
      uint32_t uncached = 0;
      for (uint32_t smp = 0; smp < batch; smp++) {
         dbc_sample_t *q = &st[smp];
         double num = 0.0, den = 0.0;
         for (uint32_t c = 0; c < conditions; c++) {
            const size_t off = ((size_t)c * batch + smp) * H;
            for (size_t k = 0; k < H; k++) {
               const float r = hidden[off + k] - before[off + k];
               before[off + k] = r;
               num += fabs((double)r_prev[off + k] - (double)r);
               den += fabs((double)r_prev[off + k]);
            }
         }
         const double rel = den > 0.0 ? num / den : INFINITY;
         q->cached_now = q->stored && (long)s >= p->warmup && rel < p->threshold &&
                         (p->max_cached < 0 || q->cached_count < p->max_cached) &&
                         (p->max_consecutive < 0 || q->consecutive < p->max_consecutive);
         for (uint32_t c = 0; c < conditions; c++) {
            const size_t off = ((size_t)c * batch + smp) * H;
            if (q->cached_now) {
               for (size_t k = 0; k < H; k++)
                  hidden[off + k] += m_res[off + k];
            } else {
               memcpy(r_prev + off, before + off, H * sizeof(float));
               memcpy(before + off, hidden + off, H * sizeof(float)); /* before the middle */
               list[uncached++] = c * batch + smp;
            }
         }
         if (q->cached_now) {
            q->cached_count++;
            q->consecutive++;
         } else {
            q->consecutive = 0;
            q->stored = 1;
         }
      }

      /* Middle blocks on the uncached rows only. */
      for (uint32_t b = mid_from; b < mid_to && rc == ASSAY_OK && uncached > 0; b++)
         rc = uncached == rows ? ba->block(ba, b, hidden, context)
                               : br->block_rows(br, b, uncached, list, hidden, context);
      if (rc != ASSAY_OK)
         break;
      for (uint32_t i = 0; i < uncached; i++) {
         const size_t off = (size_t)list[i] * H;
         for (size_t k = 0; k < H; k++)
            m_res[off + k] = hidden[off + k] - before[off + k];
      }

      /* Last bn blocks on every row, epilogue, Euler step. */
      for (uint32_t b = mid_to; b < nb && rc == ASSAY_OK; b++)
         rc = ba->block(ba, b, hidden, context);
      if (rc == ASSAY_OK)
         rc = ba->epilogue(ba, hidden, context, v);
      if (rc != ASSAY_OK)
         break;
      const float dt = t[s + 1] - t[s];
      for (size_t j = 0; j < count; j++)
         x[j] += dt * v[j];
   }

done:
   free(hidden);
   free(before);
   free(r_prev);
   free(m_res);
   free(context);
   free(v);
   free(list);
   free(st);
   return rc;
}

/* [job-thread] Integrates x from t_from down to t_to. See the top of the file. */
static assay_result_t dbc_advance(const assay_plugin_t *plugin, const assay_call_t *call,
                                  const assay_model_access_t *model, float *x, float t_from,
                                  float t_to, const assay_options_t *options) {
   const dbc_instance_t *self = dbc_self(plugin);
   if (model == NULL || model->evaluate == NULL || x == NULL) {
      dbc_fail(self, call, "dbcache: advance got a NULL model or latent (host bug)");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   if (!(t_to >= 0.0f && t_to < t_from && t_from <= 1.0f)) {
      dbc_fail(self, call,
               "dbcache: cannot integrate from t = %g to t = %g; need 0 <= t_to < t_from <= 1",
               (double)t_from, (double)t_to);
      return ASSAY_ERR_INVALID_ARGUMENT;
   }

   double steps = 20.0;
   for (uint32_t i = 0; options != NULL && i < options->count; i++) {
      const assay_option_t *opt = &options->items[i];
      if (opt->key == NULL || strcmp(opt->key, "steps") != 0)
         continue;
      if (opt->type != ASSAY_OPTION_NUMBER || !(opt->number >= 1.0 && opt->number <= 1e6)) {
         dbc_fail(self, call, "dbcache: option \"steps\" must be a number from 1 to 1e6 (the "
                              "step count for the whole 1 -> 0 path)");
         return ASSAY_ERR_INVALID_ARGUMENT;
      }
      steps = opt->number;
   }
   dbc_params_t p = self->defaults;
   assay_result_t rc = dbc_read_params(self, call, options, &p);
   if (rc != ASSAY_OK)
      return rc;

   /* ceil with a little slack so that 10 * (0.7 - 0.6) = 1.0000001 still means 1 step. */
   const double exact = steps * ((double)t_from - (double)t_to);
   const double n_real = ceil(exact - 1e-4);
   const uint32_t n = n_real < 1.0 ? 1u : (uint32_t)n_real;

   const size_t sample = (size_t)model->channels * model->height * model->width;
   if (model->batch == 0 || sample == 0 || sample > SIZE_MAX / sizeof(float) / model->batch) {
      dbc_fail(self, call, "dbcache: model access has an empty or impossibly large shape "
                           "(host bug)");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   const size_t count = sample * model->batch;
   float *t = malloc(((size_t)n + 1) * sizeof *t);
   if (t == NULL) {
      dbc_fail(self, call, "dbcache: out of memory allocating %u step times", n + 1);
      return ASSAY_ERR_NO_MEMORY;
   }
   dbc_times(steps, t_from, t_to, n, t);

   const assay_model_blocks_access_t *ba = NULL;
   const assay_model_blocks_rows_t *br = NULL;
   if (model->get_extension != NULL) {
      ba = model->get_extension(model, ASSAY_EXT_MODEL_BLOCKS_ACCESS);
      br = model->get_extension(model, ASSAY_EXT_MODEL_BLOCKS_ROWS_DRAFT);
   }
   if (ba != NULL && br != NULL && br->block_rows != NULL && ba->prologue != NULL &&
       ba->block != NULL && ba->epilogue != NULL && ba->info.block_count >= 2)
      rc = dbc_cached(self, call, model, ba, br, &p, x, t, n, count);
   else
      rc = dbc_euler(self, call, model, x, t, n, count);
   free(t);
   return rc;
}

static const assay_sampler_ext_t dbc_sampler_ext = {
   .advance = dbc_advance,
};

static const void *dbc_get_extension(const assay_plugin_t *plugin, const char *id) {
   (void)plugin;
   if (id != NULL && strcmp(id, ASSAY_EXT_SAMPLER) == 0)
      return &dbc_sampler_ext;
   return NULL;
}

/* ---- Descriptor, factory, entry ------------------------------------------------------ */

static const assay_plugin_descriptor_t dbc_descriptor = {
   .abi_version = ASSAY_VERSION_INIT,
   .id = "dbcache",
   .name = "DBCache caching Euler sampler",
   .version = "0.1.0",
   .description = "Euler that reuses each sample's cached middle-block residual while its "
                  "first blocks' residual barely changes (DBCache, decided per sample).",
   .kind = ASSAY_KIND_SAMPLER,
};

static uint32_t dbc_get_plugin_count(const assay_plugin_factory_t *factory) {
   (void)factory;
   return 1;
}

static const assay_plugin_descriptor_t *dbc_get_plugin_descriptor(
   const assay_plugin_factory_t *factory, uint32_t index) {
   (void)factory;
   return index == 0 ? &dbc_descriptor : NULL;
}

static const assay_plugin_t *dbc_create_plugin(const assay_plugin_factory_t *factory,
                                               const assay_host_t *host,
                                               const char *plugin_id) {
   (void)factory;
   if (plugin_id == NULL || strcmp(plugin_id, dbc_descriptor.id) != 0)
      return NULL;
   dbc_instance_t *self = calloc(1, sizeof *self);
   if (self == NULL)
      return NULL;
   self->host = host;
   self->defaults = dbc_builtin;
   self->plugin.desc = &dbc_descriptor;
   self->plugin.plugin_data = self;
   self->plugin.init = dbc_init;
   self->plugin.destroy = dbc_destroy;
   self->plugin.get_extension = dbc_get_extension;
   return &self->plugin;
}

static const assay_plugin_factory_t dbc_factory = {
   .get_plugin_count = dbc_get_plugin_count,
   .get_plugin_descriptor = dbc_get_plugin_descriptor,
   .create_plugin = dbc_create_plugin,
};

static bool dbc_entry_init(const char *library_path) {
   (void)library_path;
   return true;
}

static void dbc_entry_deinit(void) {}

static const void *dbc_get_factory(const char *factory_id) {
   if (factory_id != NULL && strcmp(factory_id, ASSAY_PLUGIN_FACTORY_ID) == 0)
      return &dbc_factory;
   return NULL;
}

ASSAY_EXPORT const assay_plugin_entry_t assay_entry = {
   .abi_version = ASSAY_VERSION_INIT,
   .init = dbc_entry_init,
   .deinit = dbc_entry_deinit,
   .get_factory = dbc_get_factory,
};
