/* Test fixture: one library, two verifiers in its factory.
 *   "fixture-a": score = mean red channel / 255
 *   "fixture-b": score = 1 - mean red channel / 255
 * so an ensemble of the two always disagrees on the ranking. Details {"red": <mean/255>}. */
#include <assay/assay.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
   assay_plugin_t plugin;
   const assay_host_t *host;
   int invert; /* 0 for fixture-a, 1 for fixture-b */
} two_t;

static assay_result_t two_init(const assay_plugin_t *plugin, const assay_options_t *options) {
   (void)plugin;
   (void)options;
   return ASSAY_OK;
}

static void two_destroy(const assay_plugin_t *plugin) {
   free(plugin->plugin_data);
}

static assay_result_t two_score(const assay_plugin_t *plugin, const assay_call_t *call,
                                const char *prompt, uint32_t n, const assay_image_t *images,
                                double *scores, const assay_text_out_t *details) {
   const two_t *self = plugin->plugin_data;
   (void)prompt;
   for (uint32_t i = 0; i < n; i++) {
      const assay_image_t *img = &images[i];
      if (img->width == 0 || img->height == 0 || img->pixels == NULL ||
          img->stride < (uint64_t)img->width * 3) {
         self->host->report_error(self->host, call,
                                  "fixture-a/b: empty or malformed image (stride < width * 3)");
         return ASSAY_ERR_INVALID_ARGUMENT;
      }
      uint64_t sum = 0;
      for (uint32_t y = 0; y < img->height; y++)
         for (uint32_t x = 0; x < img->width; x++)
            sum += img->pixels[(size_t)y * img->stride + (size_t)x * 3];
      const double red = (double)sum / ((double)img->width * img->height * 255.0);
      scores[i] = self->invert ? 1.0 - red : red;
      if (details != NULL) {
         char json[64];
         snprintf(json, sizeof json, "{\"red\": %.6f}", red);
         details->set(details, i, json);
      }
   }
   return ASSAY_OK;
}

static const assay_verifier_ext_t two_ext = {.score = two_score};

static const void *two_get_extension(const assay_plugin_t *plugin, const char *id) {
   (void)plugin;
   return id != NULL && strcmp(id, ASSAY_EXT_VERIFIER) == 0 ? &two_ext : NULL;
}

static const assay_plugin_descriptor_t two_descriptors[2] = {
   {ASSAY_VERSION_INIT, "fixture-a", "Fixture verifier A (red)", "1.0.0",
    "Mean red channel, 0..1.", ASSAY_KIND_VERIFIER},
   {ASSAY_VERSION_INIT, "fixture-b", "Fixture verifier B (not red)", "1.0.0",
    "One minus the mean red channel, 0..1.", ASSAY_KIND_VERIFIER},
};

static uint32_t two_count(const assay_plugin_factory_t *factory) {
   (void)factory;
   return 2;
}

static const assay_plugin_descriptor_t *two_descriptor_at(const assay_plugin_factory_t *factory,
                                                          uint32_t index) {
   (void)factory;
   return index < 2 ? &two_descriptors[index] : NULL;
}

static const assay_plugin_t *two_create(const assay_plugin_factory_t *factory,
                                        const assay_host_t *host, const char *plugin_id) {
   (void)factory;
   int which = -1;
   for (int k = 0; k < 2; k++)
      if (plugin_id != NULL && strcmp(plugin_id, two_descriptors[k].id) == 0)
         which = k;
   if (which < 0)
      return NULL;
   two_t *self = calloc(1, sizeof *self);
   if (self == NULL)
      return NULL;
   self->host = host;
   self->invert = which;
   self->plugin = (assay_plugin_t){&two_descriptors[which], self, two_init, two_destroy,
                                   two_get_extension};
   return &self->plugin;
}

static const assay_plugin_factory_t two_factory = {two_count, two_descriptor_at, two_create};

static bool two_entry_init(const char *path) {
   (void)path;
   return true;
}
static void two_entry_deinit(void) {}
static const void *two_get_factory(const char *id) {
   return id != NULL && strcmp(id, ASSAY_PLUGIN_FACTORY_ID) == 0 ? &two_factory : NULL;
}

ASSAY_EXPORT const assay_plugin_entry_t assay_entry = {ASSAY_VERSION_INIT, two_entry_init,
                                                       two_entry_deinit, two_get_factory};
