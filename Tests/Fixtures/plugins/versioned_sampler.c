/* Test fixture "fixture-sampler": an Euler sampler whose descriptor version comes from the
 * build (-DFIXTURE_VERSION='"2.0.0"'), so a test can rebuild it while the daemon runs and
 * check that the new version is picked up. The numerics never depend on the version.
 *
 * advance: steps = max(1, ceil(steps_option * (t_from - t_to))) Euler steps, the last one
 * exactly to t_to. Option "delay_ms" (number >= 0, default 0): sleep that long per
 * evaluation (in slices, polling host->is_cancelled) so a job stays busy. Option
 * "crash_at_step" (number): dereference NULL before that step's evaluation (isolation tests:
 * a sampler that crashes between the model evaluations it asked for). Every advance
 * logs "fixture-sampler <version> advance" through host->log with the call. */
#define _POSIX_C_SOURCE 200809L /* nanosleep under -std=c11 */
#include <assay/assay.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef FIXTURE_VERSION
#define FIXTURE_VERSION "1.0.0"
#endif

typedef struct {
   assay_plugin_t plugin;
   const assay_host_t *host;
} fixture_t;

static void fixture_fail(const fixture_t *self, const assay_call_t *call, const char *msg) {
   self->host->report_error(self->host, call, msg);
}

static assay_result_t fixture_init(const assay_plugin_t *plugin, const assay_options_t *options) {
   (void)plugin;
   (void)options;
   return ASSAY_OK;
}

static void fixture_destroy(const assay_plugin_t *plugin) {
   free(plugin->plugin_data);
}

/* Sleeps `ms` milliseconds in slices of at most 5 ms; false if the job got cancelled. */
static bool fixture_sleep(const fixture_t *self, const assay_call_t *call, double ms) {
   while (ms > 0) {
      if (self->host->is_cancelled(self->host, call))
         return false;
      const double slice = ms < 5.0 ? ms : 5.0;
      struct timespec ts = {0, (long)(slice * 1e6)};
      nanosleep(&ts, NULL);
      ms -= slice;
   }
   return !self->host->is_cancelled(self->host, call);
}

static assay_result_t fixture_advance(const assay_plugin_t *plugin, const assay_call_t *call,
                                      const assay_model_access_t *model, float *x, float t_from,
                                      float t_to, const assay_options_t *options) {
   const fixture_t *self = plugin->plugin_data;
   self->host->log(self->host, call, ASSAY_LOG_INFO, "fixture-sampler " FIXTURE_VERSION " advance");
   if (model == NULL || x == NULL || !(t_to >= 0.0f && t_to < t_from && t_from <= 1.0f)) {
      fixture_fail(self, call, "fixture-sampler: need a model, a latent and 0 <= t_to < t_from <= 1");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   double steps_option = 10.0, delay_ms = 0.0, crash_at = -1.0;
   for (uint32_t i = 0; options != NULL && i < options->count; i++) {
      const assay_option_t *opt = &options->items[i];
      if (strcmp(opt->key, "crash_at_step") == 0 && opt->type == ASSAY_OPTION_NUMBER)
         crash_at = opt->number;
      const bool is_steps = strcmp(opt->key, "steps") == 0;
      const bool is_delay = strcmp(opt->key, "delay_ms") == 0;
      if (!is_steps && !is_delay)
         continue;
      if (opt->type != ASSAY_OPTION_NUMBER || !(opt->number >= 0.0 && opt->number <= 1e6) ||
          (is_steps && opt->number <= 0.0)) {
         fixture_fail(self, call, is_steps ? "fixture-sampler: option \"steps\" must be a number in (0, 1e6]"
                                           : "fixture-sampler: option \"delay_ms\" must be a number in [0, 1e6]");
         return ASSAY_ERR_INVALID_ARGUMENT;
      }
      if (is_steps)
         steps_option = opt->number;
      else
         delay_ms = opt->number;
   }
   uint32_t steps = (uint32_t)ceil(steps_option * ((double)t_from - (double)t_to) - 1e-4);
   if (steps < 1)
      steps = 1;
   const size_t count = (size_t)model->batch * model->channels * model->height * model->width;
   float *v = malloc((count > 0 ? count : 1) * sizeof(float));
   if (v == NULL) {
      fixture_fail(self, call, "fixture-sampler: out of memory");
      return ASSAY_ERR_NO_MEMORY;
   }
   assay_result_t rc = ASSAY_OK;
   for (uint32_t s = 0; s < steps; s++) {
      const float t = s == 0 ? t_from : (float)(t_from + ((double)t_to - t_from) * s / steps);
      const float t_next = s + 1 == steps ? t_to : (float)(t_from + ((double)t_to - t_from) * (s + 1) / steps);
      if (crash_at >= 0.0 && (double)s >= crash_at) {
         volatile int *volatile bad = NULL;
         *bad = 1;
      }
      if (!fixture_sleep(self, call, delay_ms)) {
         fixture_fail(self, call, "fixture-sampler: cancelled");
         rc = ASSAY_ERR_CANCELLED;
         break;
      }
      rc = model->evaluate(model, x, t, v);
      if (rc != ASSAY_OK)
         break;
      for (size_t j = 0; j < count; j++)
         x[j] += (t_next - t) * v[j];
   }
   free(v);
   return rc;
}

static const assay_sampler_ext_t fixture_ext = {.advance = fixture_advance};

static const void *fixture_get_extension(const assay_plugin_t *plugin, const char *id) {
   (void)plugin;
   return id != NULL && strcmp(id, ASSAY_EXT_SAMPLER) == 0 ? &fixture_ext : NULL;
}

static const assay_plugin_descriptor_t fixture_descriptor = {
   .abi_version = ASSAY_VERSION_INIT,
   .id = "fixture-sampler",
   .name = "Fixture versioned Euler sampler",
   .version = FIXTURE_VERSION,
   .description = "Euler sampler with a build-time version and an optional per-step delay.",
   .kind = ASSAY_KIND_SAMPLER,
};

static uint32_t fixture_count(const assay_plugin_factory_t *factory) {
   (void)factory;
   return 1;
}

static const assay_plugin_descriptor_t *fixture_descriptor_at(const assay_plugin_factory_t *factory,
                                                              uint32_t index) {
   (void)factory;
   return index == 0 ? &fixture_descriptor : NULL;
}

static const assay_plugin_t *fixture_create(const assay_plugin_factory_t *factory,
                                            const assay_host_t *host, const char *plugin_id) {
   (void)factory;
   if (plugin_id == NULL || strcmp(plugin_id, fixture_descriptor.id) != 0)
      return NULL;
   fixture_t *self = calloc(1, sizeof *self);
   if (self == NULL)
      return NULL;
   self->host = host;
   self->plugin = (assay_plugin_t){&fixture_descriptor, self, fixture_init, fixture_destroy,
                                   fixture_get_extension};
   return &self->plugin;
}

static const assay_plugin_factory_t fixture_factory = {fixture_count, fixture_descriptor_at,
                                                       fixture_create};

static bool fixture_entry_init(const char *path) {
   (void)path;
   return true;
}
static void fixture_entry_deinit(void) {}
static const void *fixture_get_factory(const char *id) {
   return id != NULL && strcmp(id, ASSAY_PLUGIN_FACTORY_ID) == 0 ? &fixture_factory : NULL;
}

ASSAY_EXPORT const assay_plugin_entry_t assay_entry = {ASSAY_VERSION_INIT, fixture_entry_init,
                                                       fixture_entry_deinit, fixture_get_factory};
