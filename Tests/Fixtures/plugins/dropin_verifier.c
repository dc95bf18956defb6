/* Test fixture "fixture-dropin": a verifier dropped into the plugin folder at run time.
 * score = mean of all channels of all pixels / 255 (0 = black, 1 = white);
 * details {"brightness": <score>}. */
#include <assay/assay.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
   assay_plugin_t plugin;
   const assay_host_t *host;
} dropin_t;

static assay_result_t dropin_init(const assay_plugin_t *plugin, const assay_options_t *options) {
   (void)plugin;
   (void)options;
   return ASSAY_OK;
}

static void dropin_destroy(const assay_plugin_t *plugin) {
   free(plugin->plugin_data);
}

static assay_result_t dropin_score(const assay_plugin_t *plugin, const assay_call_t *call,
                                   const char *prompt, uint32_t n, const assay_image_t *images,
                                   double *scores, const assay_text_out_t *details) {
   const dropin_t *self = plugin->plugin_data;
   (void)prompt;
   for (uint32_t i = 0; i < n; i++) {
      const assay_image_t *img = &images[i];
      if (img->width == 0 || img->height == 0 || img->pixels == NULL ||
          img->stride < (uint64_t)img->width * 3) {
         self->host->report_error(self->host, call,
                                  "fixture-dropin: empty or malformed image (stride < width * 3)");
         return ASSAY_ERR_INVALID_ARGUMENT;
      }
      uint64_t sum = 0;
      for (uint32_t y = 0; y < img->height; y++)
         for (uint32_t x = 0; x < img->width * 3u; x++)
            sum += img->pixels[(size_t)y * img->stride + x];
      scores[i] = (double)sum / ((double)img->width * img->height * 3.0 * 255.0);
      if (details != NULL) {
         char json[64];
         snprintf(json, sizeof json, "{\"brightness\": %.6f}", scores[i]);
         details->set(details, i, json);
      }
   }
   return ASSAY_OK;
}

static const assay_verifier_ext_t dropin_ext = {.score = dropin_score};

static const void *dropin_get_extension(const assay_plugin_t *plugin, const char *id) {
   (void)plugin;
   return id != NULL && strcmp(id, ASSAY_EXT_VERIFIER) == 0 ? &dropin_ext : NULL;
}

static const assay_plugin_descriptor_t dropin_descriptor = {
   .abi_version = ASSAY_VERSION_INIT,
   .id = "fixture-dropin",
   .name = "Fixture drop-in brightness verifier",
   .version = "1.0.0",
   .description = "Mean brightness of the image, 0..1.",
   .kind = ASSAY_KIND_VERIFIER,
};

static uint32_t dropin_count(const assay_plugin_factory_t *factory) {
   (void)factory;
   return 1;
}

static const assay_plugin_descriptor_t *dropin_descriptor_at(const assay_plugin_factory_t *factory,
                                                             uint32_t index) {
   (void)factory;
   return index == 0 ? &dropin_descriptor : NULL;
}

static const assay_plugin_t *dropin_create(const assay_plugin_factory_t *factory,
                                           const assay_host_t *host, const char *plugin_id) {
   (void)factory;
   if (plugin_id == NULL || strcmp(plugin_id, dropin_descriptor.id) != 0)
      return NULL;
   dropin_t *self = calloc(1, sizeof *self);
   if (self == NULL)
      return NULL;
   self->host = host;
   self->plugin = (assay_plugin_t){&dropin_descriptor, self, dropin_init, dropin_destroy,
                                   dropin_get_extension};
   return &self->plugin;
}

static const assay_plugin_factory_t dropin_factory = {dropin_count, dropin_descriptor_at,
                                                      dropin_create};

static bool dropin_entry_init(const char *path) {
   (void)path;
   return true;
}
static void dropin_entry_deinit(void) {}
static const void *dropin_get_factory(const char *id) {
   return id != NULL && strcmp(id, ASSAY_PLUGIN_FACTORY_ID) == 0 ? &dropin_factory : NULL;
}

ASSAY_EXPORT const assay_plugin_entry_t assay_entry = {ASSAY_VERSION_INIT, dropin_entry_init,
                                                       dropin_entry_deinit, dropin_get_factory};
