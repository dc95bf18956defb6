/* Test fixture "fixture-hang": a verifier whose score never returns and never looks at
 * cancellation (a plugin stuck in a loop or a blocking call). For tests of what the host
 * does around a call it cannot interrupt. */
#include <assay/assay.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static assay_result_t hang_init(const assay_plugin_t *plugin, const assay_options_t *options) {
   (void)plugin;
   (void)options;
   return ASSAY_OK;
}

static void hang_destroy(const assay_plugin_t *plugin) {
   free((void *)plugin);
}

static assay_result_t hang_score(const assay_plugin_t *plugin, const assay_call_t *call,
                                 const char *prompt, uint32_t n, const assay_image_t *images,
                                 double *scores, const assay_text_out_t *details) {
   (void)plugin;
   (void)call;
   (void)prompt;
   (void)n;
   (void)images;
   (void)scores;
   (void)details;
   for (;;)
      sleep(1);
   return ASSAY_OK;
}

static const assay_verifier_ext_t hang_ext = {.score = hang_score};

static const void *hang_get_extension(const assay_plugin_t *plugin, const char *id) {
   (void)plugin;
   return id != NULL && strcmp(id, ASSAY_EXT_VERIFIER) == 0 ? &hang_ext : NULL;
}

static const assay_plugin_descriptor_t hang_descriptor = {
   .abi_version = ASSAY_VERSION_INIT,
   .id = "fixture-hang",
   .name = "Fixture stuck verifier",
   .version = "1.0.0",
   .description = "score never returns.",
   .kind = ASSAY_KIND_VERIFIER,
};

static uint32_t hang_count(const assay_plugin_factory_t *factory) {
   (void)factory;
   return 1;
}

static const assay_plugin_descriptor_t *hang_descriptor_at(const assay_plugin_factory_t *factory,
                                                           uint32_t index) {
   (void)factory;
   return index == 0 ? &hang_descriptor : NULL;
}

static const assay_plugin_t *hang_create(const assay_plugin_factory_t *factory,
                                         const assay_host_t *host, const char *plugin_id) {
   (void)factory;
   (void)host;
   if (plugin_id == NULL || strcmp(plugin_id, hang_descriptor.id) != 0)
      return NULL;
   assay_plugin_t *self = calloc(1, sizeof *self);
   if (self == NULL)
      return NULL;
   *self = (assay_plugin_t){&hang_descriptor, NULL, hang_init, hang_destroy, hang_get_extension};
   return self;
}

static const assay_plugin_factory_t hang_factory = {hang_count, hang_descriptor_at, hang_create};

static bool hang_entry_init(const char *path) {
   (void)path;
   return true;
}
static void hang_entry_deinit(void) {}
static const void *hang_get_factory(const char *id) {
   return id != NULL && strcmp(id, ASSAY_PLUGIN_FACTORY_ID) == 0 ? &hang_factory : NULL;
}

ASSAY_EXPORT const assay_plugin_entry_t assay_entry = {ASSAY_VERSION_INIT, hang_entry_init,
                                                       hang_entry_deinit, hang_get_factory};
