/* shapes-quality.c: a no-reference, prompt-agnostic image-quality score for shapes-world
 * images (id "shapes-quality"), the analogue of an aesthetic score.
 *
 * Score in [0, 1] (1 = a clean render), the prompt is ignored. Formula (world/quality.c):
 * per pixel, L = nearest palette entry (background included, as the checker), d1 = RGB
 * distance to it, d2 = distance to the second nearest; smear pixel: d1 > 0.5 * d2.
 *   background = mean over background pixels of ramp(d1; 16, 64)   (plain, clean)
 *   crisp      = 1 - smear pixels / ink pixels (ink = non-background or smear)
 *   saturation = mean over non-smear colour pixels of ramp(d1; 16, 112)
 *   size       = area share of plausible objects (box sides in [5, 16] * min(w,h)/32,
 *                fill >= 0.3; components of area >= 6), times min(1, 4 / their number);
 *                0 without objects
 *   speckle    = 1 / (1 + n / 4), n = components of area < 6
 *   score      = exp(.25 ln background + .25 ln crisp + .20 ln saturation + .15 ln size
 *                    + .15 ln speckle), sub-scores floored at 1e-4
 *   (ramp(d; a, b) = 1 for d <= a, 0 for d >= b, linear between.)
 * Details per image: {"score":..,"background":..,"crisp":..,"saturation":..,"size":..,
 *   "speckle":..,"objects":N,"speckles":N,"smear_pixels":N,"object_pixels":N,
 *   "background_pixels":N}.
 *
 * Threads: no mutable state at all; every buffer is allocated per call. */
#include <assay/assay.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "world/world.h"

typedef struct sq_instance {
   assay_plugin_t plugin;
   const assay_host_t *host;
} sq_instance_t;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void sq_fail(const sq_instance_t *self, const assay_call_t *call, const char *fmt, ...) {
   char message[768];
   va_list args;
   va_start(args, fmt);
   vsnprintf(message, sizeof message, fmt, args);
   va_end(args);
   if (self->host != NULL && self->host->report_error != NULL)
      self->host->report_error(self->host, call, message);
}

static assay_result_t sq_init(const assay_plugin_t *plugin, const assay_options_t *options) {
   (void)plugin;
   (void)options; /* no options; unknown keys are ignored */
   return ASSAY_OK;
}

static void sq_destroy(const assay_plugin_t *plugin) {
   free(plugin->plugin_data);
}

static assay_result_t sq_score(const assay_plugin_t *plugin, const assay_call_t *call,
                               const char *prompt, uint32_t n, const assay_image_t *images,
                               double *scores, const assay_text_out_t *details) {
   const sq_instance_t *self = (const sq_instance_t *)plugin->plugin_data;
   (void)prompt; /* prompt-agnostic */
   if (n > 0 && (images == NULL || scores == NULL)) {
      sq_fail(self, call, "shapes-quality: score got a NULL image array or score array "
                          "(host bug)");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   for (uint32_t i = 0; i < n; i++) {
      const sw_image_t img = {images[i].width, images[i].height, images[i].stride,
                              images[i].pixels};
      const char *problem = sw_image_problem(&img);
      if (problem != NULL) {
         sq_fail(self, call, "shapes-quality: image %u is malformed (%ux%u, stride %u): %s",
                 i, img.width, img.height, img.stride, problem);
         return ASSAY_ERR_INVALID_ARGUMENT;
      }
   }
   for (uint32_t i = 0; i < n; i++) {
      if (self->host != NULL && self->host->is_cancelled != NULL &&
          self->host->is_cancelled(self->host, call)) {
         sq_fail(self, call, "shapes-quality: cancelled");
         return ASSAY_ERR_CANCELLED;
      }
      const sw_image_t img = {images[i].width, images[i].height, images[i].stride,
                              images[i].pixels};
      sw_quality_t q;
      if (sw_quality(&img, &q) != 0) {
         sq_fail(self, call, "shapes-quality: out of memory scoring image %u (%ux%u)", i,
                 img.width, img.height);
         return ASSAY_ERR_NO_MEMORY;
      }
      scores[i] = q.score;
      if (details != NULL && details->set != NULL) {
         sw_buf_t json;
         sw_buf_init(&json);
         sw_quality_json(&q, &json);
         if (json.oom) {
            sw_buf_free(&json);
            sq_fail(self, call, "shapes-quality: out of memory writing details of image %u",
                    i);
            return ASSAY_ERR_NO_MEMORY;
         }
         details->set(details, i, json.data);
         sw_buf_free(&json);
      }
   }
   return ASSAY_OK;
}

static const assay_verifier_ext_t sq_verifier_ext = {
   .score = sq_score,
};

static const void *sq_get_extension(const assay_plugin_t *plugin, const char *id) {
   (void)plugin;
   if (id != NULL && strcmp(id, ASSAY_EXT_VERIFIER) == 0)
      return &sq_verifier_ext;
   return NULL;
}

/* ---- Descriptor, factory, entry ------------------------------------------------------ */

static const assay_plugin_descriptor_t sq_descriptor = {
   .abi_version = ASSAY_VERSION_INIT,
   .id = "shapes-quality",
   .name = "Shapes image quality",
   .version = "1.0.0",
   .description = "No-reference quality of a shapes-world image: clean background, crisp "
                  "edges, saturated colours, plausible objects, no speckles.",
   .kind = ASSAY_KIND_VERIFIER,
};

static uint32_t sq_get_plugin_count(const assay_plugin_factory_t *factory) {
   (void)factory;
   return 1;
}

static const assay_plugin_descriptor_t *sq_get_plugin_descriptor(
   const assay_plugin_factory_t *factory, uint32_t index) {
   (void)factory;
   return index == 0 ? &sq_descriptor : NULL;
}

static const assay_plugin_t *sq_create_plugin(const assay_plugin_factory_t *factory,
                                              const assay_host_t *host, const char *plugin_id) {
   (void)factory;
   if (plugin_id == NULL || strcmp(plugin_id, sq_descriptor.id) != 0)
      return NULL;
   sq_instance_t *self = calloc(1, sizeof *self);
   if (self == NULL)
      return NULL;
   self->host = host;
   self->plugin.desc = &sq_descriptor;
   self->plugin.plugin_data = self;
   self->plugin.init = sq_init;
   self->plugin.destroy = sq_destroy;
   self->plugin.get_extension = sq_get_extension;
   return &self->plugin;
}

static const assay_plugin_factory_t sq_factory = {
   .get_plugin_count = sq_get_plugin_count,
   .get_plugin_descriptor = sq_get_plugin_descriptor,
   .create_plugin = sq_create_plugin,
};

static bool sq_entry_init(const char *library_path) {
   (void)library_path;
   return true;
}

static void sq_entry_deinit(void) {}

static const void *sq_get_factory(const char *factory_id) {
   if (factory_id != NULL && strcmp(factory_id, ASSAY_PLUGIN_FACTORY_ID) == 0)
      return &sq_factory;
   return NULL;
}

ASSAY_EXPORT const assay_plugin_entry_t assay_entry = {
   .abi_version = ASSAY_VERSION_INIT,
   .init = sq_entry_init,
   .deinit = sq_entry_deinit,
   .get_factory = sq_get_factory,
};
