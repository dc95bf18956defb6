/* Test fixture "fixture-greedy": a misbehaving sampler that ignores budgets. It takes
 * 10000 Euler steps from t_from to t_to regardless of options, and stops only when
 * evaluate refuses, returning exactly what evaluate returned. Tests use it to prove that
 * the host's NFE budget holds even against a plugin that does not cooperate.
 * (It still stops on an evaluate error: a plugin that ignored those would loop forever.) */
#include <assay/assay.h>

#include <stdlib.h>
#include <string.h>

#define GREEDY_STEPS 10000u

typedef struct {
   assay_plugin_t plugin;
   const assay_host_t *host;
} greedy_t;

static assay_result_t greedy_init(const assay_plugin_t *plugin, const assay_options_t *options) {
   (void)plugin;
   (void)options;
   return ASSAY_OK;
}

static void greedy_destroy(const assay_plugin_t *plugin) {
   free(plugin->plugin_data);
}

static assay_result_t greedy_advance(const assay_plugin_t *plugin, const assay_call_t *call,
                                     const assay_model_access_t *model, float *x, float t_from,
                                     float t_to, const assay_options_t *options) {
   const greedy_t *self = plugin->plugin_data;
   (void)options; /* deliberately ignores "steps" */
   const size_t count = (size_t)model->batch * model->channels * model->height * model->width;
   float *v = malloc((count > 0 ? count : 1) * sizeof(float));
   if (v == NULL) {
      self->host->report_error(self->host, call, "fixture-greedy: out of memory");
      return ASSAY_ERR_NO_MEMORY;
   }
   assay_result_t rc = ASSAY_OK;
   for (uint32_t s = 0; s < GREEDY_STEPS; s++) {
      const float t = (float)(t_from + ((double)t_to - t_from) * s / GREEDY_STEPS);
      const float t_next =
         s + 1 == GREEDY_STEPS ? t_to : (float)(t_from + ((double)t_to - t_from) * (s + 1) / GREEDY_STEPS);
      rc = model->evaluate(model, x, t, v);
      if (rc != ASSAY_OK)
         break; /* whatever evaluate said (ASSAY_ERR_BUDGET, ...) goes back unchanged */
      for (size_t j = 0; j < count; j++)
         x[j] += (t_next - t) * v[j];
   }
   free(v);
   return rc;
}

static const assay_sampler_ext_t greedy_ext = {.advance = greedy_advance};

static const void *greedy_get_extension(const assay_plugin_t *plugin, const char *id) {
   (void)plugin;
   return id != NULL && strcmp(id, ASSAY_EXT_SAMPLER) == 0 ? &greedy_ext : NULL;
}

static const assay_plugin_descriptor_t greedy_descriptor = {
   .abi_version = ASSAY_VERSION_INIT,
   .id = "fixture-greedy",
   .name = "Fixture greedy sampler",
   .version = "1.0.0",
   .description = "Takes 10000 Euler steps whatever the budget; for budget tests.",
   .kind = ASSAY_KIND_SAMPLER,
};

static uint32_t greedy_count(const assay_plugin_factory_t *factory) {
   (void)factory;
   return 1;
}

static const assay_plugin_descriptor_t *greedy_descriptor_at(const assay_plugin_factory_t *factory,
                                                             uint32_t index) {
   (void)factory;
   return index == 0 ? &greedy_descriptor : NULL;
}

static const assay_plugin_t *greedy_create(const assay_plugin_factory_t *factory,
                                           const assay_host_t *host, const char *plugin_id) {
   (void)factory;
   if (plugin_id == NULL || strcmp(plugin_id, greedy_descriptor.id) != 0)
      return NULL;
   greedy_t *self = calloc(1, sizeof *self);
   if (self == NULL)
      return NULL;
   self->host = host;
   self->plugin = (assay_plugin_t){&greedy_descriptor, self, greedy_init, greedy_destroy,
                                   greedy_get_extension};
   return &self->plugin;
}

static const assay_plugin_factory_t greedy_factory = {greedy_count, greedy_descriptor_at,
                                                      greedy_create};

static bool greedy_entry_init(const char *path) {
   (void)path;
   return true;
}
static void greedy_entry_deinit(void) {}
static const void *greedy_get_factory(const char *id) {
   return id != NULL && strcmp(id, ASSAY_PLUGIN_FACTORY_ID) == 0 ? &greedy_factory : NULL;
}

ASSAY_EXPORT const assay_plugin_entry_t assay_entry = {ASSAY_VERSION_INIT, greedy_entry_init,
                                                       greedy_entry_deinit, greedy_get_factory};
