/* Test fixture "fixture-slow-init": a verifier whose instance init sleeps "delay_ms"
 * milliseconds (an instance option, default 3000), as a plugin loading large weights from a
 * slow disk would; its score is 0.5. For tests that a slow init holds back neither the bus
 * name nor other plugin files. */
#define _POSIX_C_SOURCE 200809L
#include <assay/assay.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

static assay_result_t slowinit_init(const assay_plugin_t *plugin, const assay_options_t *options) {
   (void)plugin;
   double delay_ms = 3000;
   for (uint32_t i = 0; options != NULL && i < options->count; i++)
      if (strcmp(options->items[i].key, "delay_ms") == 0 && options->items[i].string == NULL)
         delay_ms = options->items[i].number;
   const struct timespec wait = {(time_t)(delay_ms / 1000), (long)(((long long)delay_ms % 1000) * 1000000)};
   nanosleep(&wait, NULL);
   return ASSAY_OK;
}

static void slowinit_destroy(const assay_plugin_t *plugin) {
   free((void *)plugin);
}

static assay_result_t slowinit_score(const assay_plugin_t *plugin, const assay_call_t *call,
                                 const char *prompt, uint32_t n, const assay_image_t *images,
                                 double *scores, const assay_text_out_t *details) {
   (void)plugin;
   (void)call;
   (void)prompt;
   (void)images;
   (void)details;
   for (uint32_t i = 0; i < n; i++)
      scores[i] = 0.5;
   return ASSAY_OK;
}

static const assay_verifier_ext_t slowinit_ext = {.score = slowinit_score};

static const void *slowinit_get_extension(const assay_plugin_t *plugin, const char *id) {
   (void)plugin;
   return id != NULL && strcmp(id, ASSAY_EXT_VERIFIER) == 0 ? &slowinit_ext : NULL;
}

static const assay_plugin_descriptor_t slowinit_descriptor = {
   .abi_version = ASSAY_VERSION_INIT,
   .id = "fixture-slow-init",
   .name = "Fixture verifier with a slow init",
   .version = "1.0.0",
   .description = "init sleeps delay_ms (instance option, default 3000), then scores 0.5.",
   .kind = ASSAY_KIND_VERIFIER,
};

static uint32_t slowinit_count(const assay_plugin_factory_t *factory) {
   (void)factory;
   return 1;
}

static const assay_plugin_descriptor_t *slowinit_descriptor_at(const assay_plugin_factory_t *factory,
                                                           uint32_t index) {
   (void)factory;
   return index == 0 ? &slowinit_descriptor : NULL;
}

static const assay_plugin_t *slowinit_create(const assay_plugin_factory_t *factory,
                                         const assay_host_t *host, const char *plugin_id) {
   (void)factory;
   (void)host;
   if (plugin_id == NULL || strcmp(plugin_id, slowinit_descriptor.id) != 0)
      return NULL;
   assay_plugin_t *self = calloc(1, sizeof *self);
   if (self == NULL)
      return NULL;
   *self = (assay_plugin_t){&slowinit_descriptor, NULL, slowinit_init, slowinit_destroy, slowinit_get_extension};
   return self;
}

static const assay_plugin_factory_t slowinit_factory = {slowinit_count, slowinit_descriptor_at, slowinit_create};

static bool slowinit_entry_init(const char *path) {
   (void)path;
   return true;
}
static void slowinit_entry_deinit(void) {}
static const void *slowinit_get_factory(const char *id) {
   return id != NULL && strcmp(id, ASSAY_PLUGIN_FACTORY_ID) == 0 ? &slowinit_factory : NULL;
}

ASSAY_EXPORT const assay_plugin_entry_t assay_entry = {ASSAY_VERSION_INIT, slowinit_entry_init,
                                                       slowinit_entry_deinit, slowinit_get_factory};
