/* Test fixture "fixture-init-fails": a verifier whose instance init always fails the way a
 * plugin with missing weights would: it reports
 *   "weights file missing: put foo.bin beside the plugin"
 * and returns ASSAY_ERR_IO. The host must destroy the instance and list the plugin as
 * refused with that reason. init receives no call, so the report is made with call NULL. */
#include <assay/assay.h>

#include <stdlib.h>
#include <string.h>

typedef struct {
   assay_plugin_t plugin;
   const assay_host_t *host;
} init_fails_t;

static assay_result_t if_init(const assay_plugin_t *plugin, const assay_options_t *options) {
   const init_fails_t *self = plugin->plugin_data;
   (void)options;
   self->host->report_error(self->host, NULL, "weights file missing: put foo.bin beside the plugin");
   return ASSAY_ERR_IO;
}

static void if_destroy(const assay_plugin_t *plugin) {
   free(plugin->plugin_data);
}

static assay_result_t if_score(const assay_plugin_t *plugin, const assay_call_t *call,
                               const char *prompt, uint32_t n, const assay_image_t *images,
                               double *scores, const assay_text_out_t *details) {
   const init_fails_t *self = plugin->plugin_data;
   (void)prompt, (void)n, (void)images, (void)scores, (void)details;
   self->host->report_error(self->host, call, "fixture-init-fails: score called on an instance whose init failed (host bug)");
   return ASSAY_ERR_INTERNAL;
}

static const assay_verifier_ext_t if_ext = {.score = if_score};

static const void *if_get_extension(const assay_plugin_t *plugin, const char *id) {
   (void)plugin;
   return id != NULL && strcmp(id, ASSAY_EXT_VERIFIER) == 0 ? &if_ext : NULL;
}

static const assay_plugin_descriptor_t if_descriptor = {
   .abi_version = ASSAY_VERSION_INIT,
   .id = "fixture-init-fails",
   .name = "Fixture verifier whose init fails",
   .version = "1.0.0",
   .description = "Instance init always fails with ASSAY_ERR_IO (missing weights).",
   .kind = ASSAY_KIND_VERIFIER,
};

static uint32_t if_count(const assay_plugin_factory_t *factory) {
   (void)factory;
   return 1;
}

static const assay_plugin_descriptor_t *if_descriptor_at(const assay_plugin_factory_t *factory,
                                                         uint32_t index) {
   (void)factory;
   return index == 0 ? &if_descriptor : NULL;
}

static const assay_plugin_t *if_create(const assay_plugin_factory_t *factory,
                                       const assay_host_t *host, const char *plugin_id) {
   (void)factory;
   if (plugin_id == NULL || strcmp(plugin_id, if_descriptor.id) != 0)
      return NULL;
   init_fails_t *self = calloc(1, sizeof *self);
   if (self == NULL)
      return NULL;
   self->host = host;
   self->plugin = (assay_plugin_t){&if_descriptor, self, if_init, if_destroy, if_get_extension};
   return &self->plugin;
}

static const assay_plugin_factory_t if_factory = {if_count, if_descriptor_at, if_create};

static bool if_entry_init(const char *path) {
   (void)path;
   return true;
}
static void if_entry_deinit(void) {}
static const void *if_get_factory(const char *id) {
   return id != NULL && strcmp(id, ASSAY_PLUGIN_FACTORY_ID) == 0 ? &if_factory : NULL;
}

ASSAY_EXPORT const assay_plugin_entry_t assay_entry = {ASSAY_VERSION_INIT, if_entry_init,
                                                       if_entry_deinit, if_get_factory};
