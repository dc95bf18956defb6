/* example-verifier.c: scores images by how well their colour matches the prompt
 * (id "example-colour").
 *
 * Copy this file to start a verifier plugin. It shows:
 *   - the entry / factory / descriptor boilerplate (same shape for every kind);
 *   - reading borrowed images (stride!) and writing scores;
 *   - per-image JSON details through the host's text sink (assay_text_out_t).
 *
 * Scoring, per image:
 *   - a pixel is "lit" when its largest channel is > 100;
 *   - a lit pixel's colour is the nearest palette colour (red, green, blue, yellow as in
 *     example-model) after scaling the pixel so its largest channel is 255: this compares
 *     hue, not brightness, so dim anti-aliased edge pixels keep their colour;
 *   - the prompt's colour is its first colour word (red/green/blue/yellow, any case);
 *   - with a colour word: score = matching lit pixels / lit pixels (0 if nothing is lit);
 *   - without one:        score = min(1, 4 * lit pixels / all pixels)  ("is something
 *                         drawn at all": one disk of the example model covers ~1/6).
 * Details: {"colour":"red","lit_pixels":37,"matching":0.92}; "colour" is null when the
 * prompt names none (then "matching" is omitted and "lit_fraction" given).
 *
 * Threads: score runs on many job threads at once. The instance has no mutable state at
 * all (only the host pointer); every scratch value is local. No global mutable state. */

#include <assay/assay.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EV_COLOURS 4
#define EV_LIT_THRESHOLD 100

/* The palette; names are plain ASCII, so they need no JSON escaping. */
static const char *const ev_colour_words[EV_COLOURS] = {"red", "green", "blue", "yellow"};
static const int ev_palette[EV_COLOURS][3] = {
   {255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 0}};

typedef struct ev_instance {
   assay_plugin_t plugin;    /* what the host sees; plugin_data points to this struct */
   const assay_host_t *host; /* borrowed from create_plugin; outlives the instance */
} ev_instance_t;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void ev_fail(const ev_instance_t *self, const assay_call_t *call, const char *fmt, ...) {
   char message[512];
   va_list args;
   va_start(args, fmt);
   vsnprintf(message, sizeof message, fmt, args);
   va_end(args);
   if (self->host != NULL && self->host->report_error != NULL)
      self->host->report_error(self->host, call, message);
}

/* Index of the first colour word in `prompt` (whole words, ASCII case-insensitive), or -1. */
static int ev_prompt_colour(const char *prompt) {
   for (const char *p = prompt; *p != '\0';) {
      while (*p != '\0' && !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
         p++;
      const char *start = p;
      while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
         p++;
      const size_t n = (size_t)(p - start);
      for (int c = 0; c < EV_COLOURS; c++) {
         const char *w = ev_colour_words[c];
         size_t i = 0;
         while (i < n && w[i] != '\0' && (start[i] | 0x20) == w[i])
            i++;
         if (n > 0 && i == n && w[i] == '\0')
            return c;
      }
   }
   return -1;
}

/* Nearest palette colour of a lit pixel, comparing hue (pixel scaled to max channel 255). */
static int ev_nearest_colour(const uint8_t *px, int max_channel) {
   int best = 0;
   long best_d2 = -1;
   for (int c = 0; c < EV_COLOURS; c++) {
      long d2 = 0;
      for (int k = 0; k < 3; k++) {
         const long scaled = (long)px[k] * 255 / max_channel;
         const long d = scaled - ev_palette[c][k];
         d2 += d * d;
      }
      if (best_d2 < 0 || d2 < best_d2) {
         best = c;
         best_d2 = d2;
      }
   }
   return best;
}

static assay_result_t ev_init(const assay_plugin_t *plugin, const assay_options_t *options) {
   (void)plugin;
   (void)options; /* no options; unknown keys are ignored as the ABI asks */
   return ASSAY_OK;
}

static void ev_destroy(const assay_plugin_t *plugin) {
   free(plugin->plugin_data);
}

/* [job-thread] See the top of the file. */
static assay_result_t ev_score(const assay_plugin_t *plugin, const assay_call_t *call,
                               const char *prompt, uint32_t n, const assay_image_t *images,
                               double *scores, const assay_text_out_t *details) {
   const ev_instance_t *self = (const ev_instance_t *)plugin->plugin_data;
   if (prompt == NULL || (n > 0 && (images == NULL || scores == NULL))) {
      ev_fail(self, call, "example-colour: score got a NULL prompt, image array or score "
                          "array (host bug)");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   const int want = ev_prompt_colour(prompt);

   for (uint32_t i = 0; i < n; i++) {
      const assay_image_t *img = &images[i];
      if (img->width == 0 || img->height == 0 || img->pixels == NULL ||
          img->stride < (uint64_t)img->width * 3) {
         ev_fail(self, call, "example-colour: image %u is malformed (%ux%u, stride %u); "
                             "expected a non-empty RGB image with stride >= width * 3",
                 i, img->width, img->height, img->stride);
         return ASSAY_ERR_INVALID_ARGUMENT;
      }
      uint64_t lit = 0, matching = 0;
      for (uint32_t y = 0; y < img->height; y++) {
         const uint8_t *row = img->pixels + (size_t)y * img->stride;
         for (uint32_t x = 0; x < img->width; x++) {
            const uint8_t *px = row + (size_t)x * 3;
            int max_channel = px[0] > px[1] ? px[0] : px[1];
            max_channel = px[2] > max_channel ? px[2] : max_channel;
            if (max_channel <= EV_LIT_THRESHOLD)
               continue;
            lit++;
            if (want >= 0 && ev_nearest_colour(px, max_channel) == want)
               matching++;
         }
      }
      const double all = (double)img->width * img->height;
      char json[160];
      if (want >= 0) {
         scores[i] = lit > 0 ? (double)matching / (double)lit : 0.0;
         snprintf(json, sizeof json, "{\"colour\":\"%s\",\"lit_pixels\":%llu,\"matching\":%.4f}",
                  ev_colour_words[want], (unsigned long long)lit, scores[i]);
      } else {
         const double fraction = (double)lit / all;
         scores[i] = fraction * 4.0 > 1.0 ? 1.0 : fraction * 4.0;
         snprintf(json, sizeof json,
                  "{\"colour\":null,\"lit_pixels\":%llu,\"lit_fraction\":%.4f}",
                  (unsigned long long)lit, fraction);
      }
      /* The host copies the text before set returns, so a stack buffer is fine. */
      if (details != NULL)
         details->set(details, i, json);
   }
   return ASSAY_OK;
}

static const assay_verifier_ext_t ev_verifier_ext = {
   .score = ev_score,
};

static const void *ev_get_extension(const assay_plugin_t *plugin, const char *id) {
   (void)plugin;
   if (id != NULL && strcmp(id, ASSAY_EXT_VERIFIER) == 0)
      return &ev_verifier_ext;
   return NULL;
}

/* ---- Descriptor, factory, entry (the same in every plugin) ------------------------- */

static const assay_plugin_descriptor_t ev_descriptor = {
   .abi_version = ASSAY_VERSION_INIT,
   .id = "example-colour",
   .name = "Example colour verifier",
   .version = "1.0.0",
   .description = "Fraction of lit pixels whose colour is the one the prompt names.",
   .kind = ASSAY_KIND_VERIFIER,
};

static uint32_t ev_get_plugin_count(const assay_plugin_factory_t *factory) {
   (void)factory;
   return 1;
}

static const assay_plugin_descriptor_t *ev_get_plugin_descriptor(
   const assay_plugin_factory_t *factory, uint32_t index) {
   (void)factory;
   return index == 0 ? &ev_descriptor : NULL;
}

static const assay_plugin_t *ev_create_plugin(const assay_plugin_factory_t *factory,
                                              const assay_host_t *host, const char *plugin_id) {
   (void)factory;
   if (plugin_id == NULL || strcmp(plugin_id, ev_descriptor.id) != 0)
      return NULL;
   ev_instance_t *self = calloc(1, sizeof *self);
   if (self == NULL)
      return NULL;
   self->host = host;
   self->plugin.desc = &ev_descriptor;
   self->plugin.plugin_data = self;
   self->plugin.init = ev_init;
   self->plugin.destroy = ev_destroy;
   self->plugin.get_extension = ev_get_extension;
   return &self->plugin;
}

static const assay_plugin_factory_t ev_factory = {
   .get_plugin_count = ev_get_plugin_count,
   .get_plugin_descriptor = ev_get_plugin_descriptor,
   .create_plugin = ev_create_plugin,
};

static bool ev_entry_init(const char *library_path) {
   (void)library_path;
   return true;
}

static void ev_entry_deinit(void) {}

static const void *ev_get_factory(const char *factory_id) {
   if (factory_id != NULL && strcmp(factory_id, ASSAY_PLUGIN_FACTORY_ID) == 0)
      return &ev_factory;
   return NULL;
}

ASSAY_EXPORT const assay_plugin_entry_t assay_entry = {
   .abi_version = ASSAY_VERSION_INIT,
   .init = ev_entry_init,
   .deinit = ev_entry_deinit,
   .get_factory = ev_get_factory,
};
