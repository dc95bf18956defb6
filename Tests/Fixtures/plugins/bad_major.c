/* Test fixture: a valid-looking verifier library ("fixture-bad-major") whose entry claims
 * ABI major 99. The host must refuse it after reading abi_version, without calling
 * anything (every function here would work if it were called). */
#include <assay/assay.h>

#include <stdlib.h>
#include <string.h>

static assay_result_t bad_init(const assay_plugin_t *plugin, const assay_options_t *options) {
   (void)plugin;
   (void)options;
   return ASSAY_OK;
}

static void bad_destroy(const assay_plugin_t *plugin) {
   free((void *)plugin);
}

static assay_result_t bad_score(const assay_plugin_t *plugin, const assay_call_t *call,
                                const char *prompt, uint32_t n, const assay_image_t *images,
                                double *scores, const assay_text_out_t *details) {
   (void)plugin, (void)call, (void)prompt, (void)images, (void)details;
   for (uint32_t i = 0; i < n; i++)
      scores[i] = 0.5;
   return ASSAY_OK;
}

static const assay_verifier_ext_t bad_ext = {.score = bad_score};

static const void *bad_get_extension(const assay_plugin_t *plugin, const char *id) {
   (void)plugin;
   return id != NULL && strcmp(id, ASSAY_EXT_VERIFIER) == 0 ? &bad_ext : NULL;
}

static const assay_plugin_descriptor_t bad_descriptor = {
   .abi_version = {99, 0, 0},
   .id = "fixture-bad-major",
   .name = "Fixture from a future ABI",
   .version = "1.0.0",
   .description = "Claims ABI major 99; the host must refuse it.",
   .kind = ASSAY_KIND_VERIFIER,
};

static uint32_t bad_count(const assay_plugin_factory_t *factory) {
   (void)factory;
   return 1;
}

static const assay_plugin_descriptor_t *bad_descriptor_at(const assay_plugin_factory_t *factory,
                                                          uint32_t index) {
   (void)factory;
   return index == 0 ? &bad_descriptor : NULL;
}

static const assay_plugin_t *bad_create(const assay_plugin_factory_t *factory,
                                        const assay_host_t *host, const char *plugin_id) {
   (void)factory;
   (void)host;
   if (plugin_id == NULL || strcmp(plugin_id, bad_descriptor.id) != 0)
      return NULL;
   assay_plugin_t *plugin = malloc(sizeof *plugin);
   if (plugin != NULL)
      *plugin = (assay_plugin_t){&bad_descriptor, NULL, bad_init, bad_destroy, bad_get_extension};
   return plugin;
}

static const assay_plugin_factory_t bad_factory = {bad_count, bad_descriptor_at, bad_create};

static bool bad_entry_init(const char *path) {
   (void)path;
   return true;
}
static void bad_entry_deinit(void) {}
static const void *bad_get_factory(const char *id) {
   return id != NULL && strcmp(id, ASSAY_PLUGIN_FACTORY_ID) == 0 ? &bad_factory : NULL;
}

ASSAY_EXPORT const assay_plugin_entry_t assay_entry = {{99, 0, 0}, bad_entry_init,
                                                       bad_entry_deinit, bad_get_factory};
