/* example-sampler.c: Heun's second-order ODE sampler (id "example-heun").
 *
 * Copy this file to start a sampler plugin. It shows:
 *   - the entry / factory / descriptor boilerplate (same shape for every kind);
 *   - reading options at two levels: instance options (init, from the daemon's
 *     configuration) give defaults, per-call options (advance, from the job) override;
 *   - the one rule that makes budgets work: a sampler reaches the model ONLY through
 *     model->evaluate, and stops at once when evaluate refuses (ASSAY_ERR_BUDGET) or the job
 *     is cancelled (ASSAY_ERR_CANCELLED);
 *   - polling host->is_cancelled between steps.
 *
 * The method. The ODE is dx/dt = v(x, t), integrated from t_from down to t_to:
 *   steps = max(1, ceil(steps_option * (t_from - t_to)))  uniform steps; the last one ends
 *           exactly at t_to. ("steps" is the job's step count for the whole 1 -> 0 path,
 *           so a partial interval gets its share.)
 *   Heun (order 2):  v1 = v(x, t); x' = x + h v1; v2 = v(x', t + h); x += h (v1 + v2) / 2
 *                    with h = t_next - t < 0. Two evaluations per step.
 *   The final step into t = 0 is a plain Euler step (x += h v1): velocities at t = 0 are
 *   often singular (here v = (x - x0) / t), and Heun's second evaluation would be wasted.
 *   Euler (order 1): x += h v1 on every step. One evaluation per step.
 *
 * Options (both levels): "steps" (number > 0, default 10; advance options only),
 *   "order" (number, 1 = Euler, 2 = Heun; default 2).
 *
 * Threads: advance runs on many job threads at once for one instance. The instance holds
 * only `default_order`, written in init (main thread) and read-only afterwards; the
 * working buffers are allocated per call. No global mutable state. */

#include <assay/assay.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct heun_instance {
   assay_plugin_t plugin;    /* what the host sees; plugin_data points to this struct */
   const assay_host_t *host; /* borrowed from create_plugin; outlives the instance */
   int default_order;        /* instance option "order", 1 or 2 */
} heun_instance_t;

static const heun_instance_t *heun_self(const assay_plugin_t *plugin) {
   return (const heun_instance_t *)plugin->plugin_data;
}

/* Formats a reason and hands it to the host; call right before returning an error.
 * `call` is NULL in init, which receives no call (see host.h). */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void heun_fail(const heun_instance_t *self, const assay_call_t *call, const char *fmt,
                      ...) {
   char message[512];
   va_list args;
   va_start(args, fmt);
   vsnprintf(message, sizeof message, fmt, args);
   va_end(args);
   if (self->host != NULL && self->host->report_error != NULL)
      self->host->report_error(self->host, call, message);
}

/* Reads option "order" if present. Returns ASSAY_OK and leaves *order alone when absent. */
static assay_result_t heun_read_order(const heun_instance_t *self, const assay_call_t *call,
                                      const assay_options_t *options, int *order) {
   for (uint32_t i = 0; options != NULL && i < options->count; i++) {
      const assay_option_t *opt = &options->items[i];
      if (strcmp(opt->key, "order") != 0)
         continue;
      if (opt->type != ASSAY_OPTION_NUMBER || !(opt->number == 1.0 || opt->number == 2.0)) {
         heun_fail(self, call,
                   "example-heun: option \"order\" must be the number 1 (Euler) or 2 "
                   "(Heun)%s",
                   opt->type == ASSAY_OPTION_NUMBER ? "" : ", not a string");
         return ASSAY_ERR_INVALID_ARGUMENT;
      }
      *order = (int)opt->number;
   }
   return ASSAY_OK;
}

/* [main-thread] Instance options: "order" sets the default for every job. */
static assay_result_t heun_init(const assay_plugin_t *plugin, const assay_options_t *options) {
   heun_instance_t *self = (heun_instance_t *)plugin->plugin_data;
   self->default_order = 2;
   return heun_read_order(self, NULL, options, &self->default_order);
}

static void heun_destroy(const assay_plugin_t *plugin) {
   free(plugin->plugin_data);
}

/* [job-thread] Integrates x from t_from down to t_to. See the top of the file. */
static assay_result_t heun_advance(const assay_plugin_t *plugin, const assay_call_t *call,
                                   const assay_model_access_t *model, float *x, float t_from,
                                   float t_to, const assay_options_t *options) {
   const heun_instance_t *self = heun_self(plugin);
   if (model == NULL || model->evaluate == NULL || x == NULL) {
      heun_fail(self, call, "example-heun: advance got a NULL model or latent (host bug)");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   if (!(t_to >= 0.0f && t_to < t_from && t_from <= 1.0f)) {
      heun_fail(self, call,
                "example-heun: cannot integrate from t = %g to t = %g; need "
                "0 <= t_to < t_from <= 1",
                (double)t_from, (double)t_to);
      return ASSAY_ERR_INVALID_ARGUMENT;
   }

   /* Per-call options: "steps" (the job's) and "order" (overrides the instance default). */
   double steps_option = 10.0;
   int order = self->default_order;
   for (uint32_t i = 0; options != NULL && i < options->count; i++) {
      const assay_option_t *opt = &options->items[i];
      if (strcmp(opt->key, "steps") != 0)
         continue;
      if (opt->type != ASSAY_OPTION_NUMBER || !(opt->number > 0.0 && opt->number <= 1e6)) {
         heun_fail(self, call,
                   "example-heun: option \"steps\" must be a number between 1 and 1e6 "
                   "(the step count for the whole 1 -> 0 path)");
         return ASSAY_ERR_INVALID_ARGUMENT;
      }
      steps_option = opt->number;
   }
   assay_result_t rc = heun_read_order(self, call, options, &order);
   if (rc != ASSAY_OK)
      return rc;

   /* ceil with a little slack so that 10 * (0.7 - 0.6) = 1.0000001 still means 1 step. */
   double exact = steps_option * ((double)t_from - (double)t_to);
   uint32_t steps = (uint32_t)ceil(exact - 1e-4);
   if (steps < 1)
      steps = 1;

   /* Working buffers: one latent batch each. Sizes come from the host; check overflow. */
   const size_t sample = (size_t)model->channels * model->height * model->width;
   if (model->batch == 0 || sample == 0 || sample > SIZE_MAX / sizeof(float) / 3 / model->batch) {
      heun_fail(self, call, "example-heun: model access has an empty or impossibly large "
                            "shape (host bug)");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   const size_t count = sample * model->batch;
   float *buffers = malloc(3 * count * sizeof(float));
   if (buffers == NULL) {
      heun_fail(self, call, "example-heun: out of memory allocating %zu floats; use a "
                            "smaller batch", 3 * count);
      return ASSAY_ERR_NO_MEMORY;
   }
   float *v1 = buffers, *v2 = buffers + count, *x_euler = buffers + 2 * count;

   rc = ASSAY_OK;
   for (uint32_t s = 0; s < steps; s++) {
      /* Cancellation between steps: evaluate also reports it, but a step can be long. */
      if (self->host->is_cancelled(self->host, call)) {
         heun_fail(self, call, "example-heun: job cancelled after %u of %u steps", s, steps);
         rc = ASSAY_ERR_CANCELLED;
         break;
      }
      const float t = s == 0 ? t_from
                             : (float)(t_from + ((double)t_to - t_from) * s / steps);
      const float t_next = s + 1 == steps ? t_to /* exactly, no rounding */
                                          : (float)(t_from + ((double)t_to - t_from) * (s + 1) / steps);
      const float h = t_next - t;

      /* ASSAY_ERR_BUDGET / ASSAY_ERR_CANCELLED (or any error) from evaluate: stop now and
       * return the same code. The host made that decision and already knows the reason,
       * so we do not report another one. */
      rc = model->evaluate(model, x, t, v1);
      if (rc != ASSAY_OK)
         break;

      const int euler = order == 1 || t_next == 0.0f;
      if (euler) {
         for (size_t j = 0; j < count; j++)
            x[j] += h * v1[j];
         continue;
      }
      for (size_t j = 0; j < count; j++)
         x_euler[j] = x[j] + h * v1[j];
      rc = model->evaluate(model, x_euler, t_next, v2);
      if (rc != ASSAY_OK)
         break;
      for (size_t j = 0; j < count; j++)
         x[j] += 0.5f * h * (v1[j] + v2[j]);
   }
   free(buffers);
   return rc;
}

static const assay_sampler_ext_t heun_sampler_ext = {
   .advance = heun_advance,
};

static const void *heun_get_extension(const assay_plugin_t *plugin, const char *id) {
   (void)plugin;
   if (id != NULL && strcmp(id, ASSAY_EXT_SAMPLER) == 0)
      return &heun_sampler_ext;
   return NULL;
}

/* ---- Descriptor, factory, entry (the same in every plugin) ------------------------- */

static const assay_plugin_descriptor_t heun_descriptor = {
   .abi_version = ASSAY_VERSION_INIT,
   .id = "example-heun",
   .name = "Example Heun sampler",
   .version = "1.0.0",
   .description = "Heun's second-order ODE method (Euler on the final step into t = 0).",
   .kind = ASSAY_KIND_SAMPLER,
};

static uint32_t heun_get_plugin_count(const assay_plugin_factory_t *factory) {
   (void)factory;
   return 1;
}

static const assay_plugin_descriptor_t *heun_get_plugin_descriptor(
   const assay_plugin_factory_t *factory, uint32_t index) {
   (void)factory;
   return index == 0 ? &heun_descriptor : NULL;
}

static const assay_plugin_t *heun_create_plugin(const assay_plugin_factory_t *factory,
                                                const assay_host_t *host,
                                                const char *plugin_id) {
   (void)factory;
   if (plugin_id == NULL || strcmp(plugin_id, heun_descriptor.id) != 0)
      return NULL;
   heun_instance_t *self = calloc(1, sizeof *self);
   if (self == NULL)
      return NULL;
   self->host = host;
   self->default_order = 2;
   self->plugin.desc = &heun_descriptor;
   self->plugin.plugin_data = self;
   self->plugin.init = heun_init;
   self->plugin.destroy = heun_destroy;
   self->plugin.get_extension = heun_get_extension;
   return &self->plugin;
}

static const assay_plugin_factory_t heun_factory = {
   .get_plugin_count = heun_get_plugin_count,
   .get_plugin_descriptor = heun_get_plugin_descriptor,
   .create_plugin = heun_create_plugin,
};

static bool heun_entry_init(const char *library_path) {
   (void)library_path;
   return true;
}

static void heun_entry_deinit(void) {}

static const void *heun_get_factory(const char *factory_id) {
   if (factory_id != NULL && strcmp(factory_id, ASSAY_PLUGIN_FACTORY_ID) == 0)
      return &heun_factory;
   return NULL;
}

ASSAY_EXPORT const assay_plugin_entry_t assay_entry = {
   .abi_version = ASSAY_VERSION_INIT,
   .init = heun_entry_init,
   .deinit = heun_entry_deinit,
   .get_factory = heun_get_factory,
};
