/* example-reflector.c: tells the search what to change in an image (id "example-reflector").
 *
 * Copy this file to start a reflector plugin. It shows:
 *   - the entry / factory / descriptor boilerplate (same shape for every kind);
 *   - writing one JSON object per image through the host's text sink, with user text (the
 *     prompt) escaped properly;
 *   - reading the optional `history` input (here only to count rounds).
 *
 * Reflection, per image:
 *   - find the dominant colour among lit pixels (largest channel > 100; hue compared as in
 *     example-verifier: pixel scaled to max channel 255, nearest of red/green/blue/yellow);
 *   - the prompt's colour is its first colour word (red/green/blue/yellow, any case);
 *   - if the prompt names a colour and the image's dominant colour differs:
 *       {"feedback":"Make the disk red instead of blue.","negative_prompt":"a blue disk",
 *        "revised_prompt":"<the prompt>","round":N}
 *   - if the image has no lit pixel and the prompt names a colour:
 *       {"feedback":"Draw a red disk; the image is empty.","revised_prompt":...,"round":N}
 *   - otherwise {"feedback":"Keep the image as it is.","round":N}
 *   N = 1 + the number of earlier reflections in history[i] (a JSON array), 1 without one.
 * Verifier `details` are not used by this example.
 *
 * Threads: reflect runs on many job threads at once. The instance has no mutable state;
 * buffers are allocated per call. No global mutable state. */

#include <assay/assay.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ER_COLOURS 4
#define ER_LIT_THRESHOLD 100

static const char *const er_colour_words[ER_COLOURS] = {"red", "green", "blue", "yellow"};
static const int er_palette[ER_COLOURS][3] = {
   {255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 0}};

typedef struct er_instance {
   assay_plugin_t plugin;    /* what the host sees; plugin_data points to this struct */
   const assay_host_t *host; /* borrowed from create_plugin; outlives the instance */
} er_instance_t;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void er_fail(const er_instance_t *self, const assay_call_t *call, const char *fmt, ...) {
   char message[512];
   va_list args;
   va_start(args, fmt);
   vsnprintf(message, sizeof message, fmt, args);
   va_end(args);
   if (self->host != NULL && self->host->report_error != NULL)
      self->host->report_error(self->host, call, message);
}

/* Index of the first colour word in `prompt` (whole words, ASCII case-insensitive), or -1. */
static int er_prompt_colour(const char *prompt) {
   for (const char *p = prompt; *p != '\0';) {
      while (*p != '\0' && !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
         p++;
      const char *start = p;
      while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
         p++;
      const size_t n = (size_t)(p - start);
      for (int c = 0; c < ER_COLOURS; c++) {
         const char *w = er_colour_words[c];
         size_t i = 0;
         while (i < n && w[i] != '\0' && (start[i] | 0x20) == w[i])
            i++;
         if (n > 0 && i == n && w[i] == '\0')
            return c;
      }
   }
   return -1;
}

/* Dominant palette colour among lit pixels, or -1 when nothing is lit. */
static int er_dominant_colour(const assay_image_t *img) {
   uint64_t votes[ER_COLOURS] = {0};
   for (uint32_t y = 0; y < img->height; y++) {
      const uint8_t *row = img->pixels + (size_t)y * img->stride;
      for (uint32_t x = 0; x < img->width; x++) {
         const uint8_t *px = row + (size_t)x * 3;
         int max_channel = px[0] > px[1] ? px[0] : px[1];
         max_channel = px[2] > max_channel ? px[2] : max_channel;
         if (max_channel <= ER_LIT_THRESHOLD)
            continue;
         int best = 0;
         long best_d2 = -1;
         for (int c = 0; c < ER_COLOURS; c++) {
            long d2 = 0;
            for (int k = 0; k < 3; k++) {
               const long d = (long)px[k] * 255 / max_channel - er_palette[c][k];
               d2 += d * d;
            }
            if (best_d2 < 0 || d2 < best_d2) {
               best = c;
               best_d2 = d2;
            }
         }
         votes[best]++;
      }
   }
   int dominant = -1;
   for (int c = 0; c < ER_COLOURS; c++)
      if (votes[c] > 0 && (dominant < 0 || votes[c] > votes[dominant]))
         dominant = c;
   return dominant;
}

/* Writes `text` as a JSON string literal (with quotes) into `out`, which must hold
 * 6 * strlen(text) + 3 bytes. Escapes ", \ and control characters; other bytes (UTF-8)
 * pass through unchanged. Returns the end of what was written (a NUL is stored there). */
static char *er_json_string(char *out, const char *text) {
   static const char hex[] = "0123456789abcdef";
   *out++ = '"';
   for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
      switch (*p) {
      case '"': *out++ = '\\'; *out++ = '"'; break;
      case '\\': *out++ = '\\'; *out++ = '\\'; break;
      case '\n': *out++ = '\\'; *out++ = 'n'; break;
      case '\r': *out++ = '\\'; *out++ = 'r'; break;
      case '\t': *out++ = '\\'; *out++ = 't'; break;
      default:
         if (*p < 0x20) {
            memcpy(out, "\\u00", 4);
            out[4] = hex[*p >> 4];
            out[5] = hex[*p & 15];
            out += 6;
         } else {
            *out++ = (char)*p;
         }
      }
   }
   *out++ = '"';
   *out = '\0';
   return out;
}

/* Number of elements of a JSON array (the history of one image), or -1 if `json` does not
 * look like an array. Only the top level is counted; strings and nesting are skipped. */
static long er_count_array(const char *json) {
   const char *p = json + strspn(json, " \t\r\n");
   if (*p != '[')
      return -1;
   long elements = 0;
   int depth = 0, in_string = 0, seen_value = 0;
   for (; *p != '\0'; p++) {
      const char ch = *p;
      if (in_string) {
         if (ch == '\\' && p[1] != '\0')
            p++;
         else if (ch == '"')
            in_string = 0;
         continue;
      }
      if (ch == '"') {
         in_string = 1;
      } else if (ch == '[' || ch == '{') {
         depth++;
      } else if (ch == ']' || ch == '}') {
         depth--;
         if (depth == 0)
            return seen_value ? elements + 1 : 0;
         if (depth < 0)
            return -1;
      } else if (ch == ',' && depth == 1) {
         elements++;
         continue;
      } else if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
         continue;
      }
      if (depth >= 1 && !(depth == 1 && ch == '['))
         seen_value = 1; /* something other than blanks inside the outer brackets */
   }
   return -1; /* unterminated */
}

static assay_result_t er_init(const assay_plugin_t *plugin, const assay_options_t *options) {
   (void)plugin;
   (void)options; /* no options; unknown keys are ignored as the ABI asks */
   return ASSAY_OK;
}

static void er_destroy(const assay_plugin_t *plugin) {
   free(plugin->plugin_data);
}

/* [job-thread] See the top of the file. */
static assay_result_t er_reflect(const assay_plugin_t *plugin, const assay_call_t *call,
                                 const char *prompt, uint32_t n, const assay_image_t *images,
                                 const char *const *details, const char *const *history,
                                 const assay_text_out_t *out) {
   const er_instance_t *self = (const er_instance_t *)plugin->plugin_data;
   (void)details;
   if (prompt == NULL || out == NULL || (n > 0 && images == NULL)) {
      er_fail(self, call, "example-reflector: reflect got a NULL prompt, image array or "
                          "output sink (host bug)");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   const int want = er_prompt_colour(prompt);

   /* One buffer per call, big enough for the escaped prompt plus the fixed text. */
   const size_t prompt_len = strlen(prompt);
   if (prompt_len > (SIZE_MAX - 512) / 6) {
      er_fail(self, call, "example-reflector: prompt is too long to reflect on");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   char *escaped = malloc(6 * prompt_len + 3);
   char *json = malloc(6 * prompt_len + 512);
   if (escaped == NULL || json == NULL) {
      free(escaped);
      free(json);
      er_fail(self, call, "example-reflector: out of memory for a %zu-byte prompt",
              prompt_len);
      return ASSAY_ERR_NO_MEMORY;
   }
   er_json_string(escaped, prompt);
   const size_t json_size = 6 * prompt_len + 512;

   assay_result_t rc = ASSAY_OK;
   for (uint32_t i = 0; i < n; i++) {
      const assay_image_t *img = &images[i];
      if (img->width == 0 || img->height == 0 || img->pixels == NULL ||
          img->stride < (uint64_t)img->width * 3) {
         er_fail(self, call, "example-reflector: image %u is malformed (%ux%u, stride %u); "
                             "expected a non-empty RGB image with stride >= width * 3",
                 i, img->width, img->height, img->stride);
         rc = ASSAY_ERR_INVALID_ARGUMENT;
         break;
      }
      long round = 1;
      if (history != NULL && history[i] != NULL) {
         const long earlier = er_count_array(history[i]);
         if (earlier < 0) {
            er_fail(self, call, "example-reflector: history[%u] is not a JSON array of "
                                "earlier reflections (host bug)", i);
            rc = ASSAY_ERR_INVALID_ARGUMENT;
            break;
         }
         round = earlier + 1;
      }

      const int have = er_dominant_colour(img);
      if (want >= 0 && have >= 0 && have != want) {
         snprintf(json, json_size,
                  "{\"feedback\":\"Make the disk %s instead of %s.\","
                  "\"negative_prompt\":\"a %s disk\",\"revised_prompt\":%s,\"round\":%ld}",
                  er_colour_words[want], er_colour_words[have], er_colour_words[have],
                  escaped, round);
      } else if (want >= 0 && have < 0) {
         snprintf(json, json_size,
                  "{\"feedback\":\"Draw a %s disk; the image is empty.\","
                  "\"revised_prompt\":%s,\"round\":%ld}",
                  er_colour_words[want], escaped, round);
      } else {
         snprintf(json, json_size, "{\"feedback\":\"Keep the image as it is.\",\"round\":%ld}",
                  round);
      }
      out->set(out, i, json); /* the host copies it; we free our buffer below */
   }
   free(escaped);
   free(json);
   return rc;
}

static const assay_reflector_ext_t er_reflector_ext = {
   .reflect = er_reflect,
};

static const void *er_get_extension(const assay_plugin_t *plugin, const char *id) {
   (void)plugin;
   if (id != NULL && strcmp(id, ASSAY_EXT_REFLECTOR) == 0)
      return &er_reflector_ext;
   return NULL;
}

/* ---- Descriptor, factory, entry (the same in every plugin) ------------------------- */

static const assay_plugin_descriptor_t er_descriptor = {
   .abi_version = ASSAY_VERSION_INIT,
   .id = "example-reflector",
   .name = "Example colour reflector",
   .version = "1.0.0",
   .description = "Asks for the prompt's colour when the image shows another one.",
   .kind = ASSAY_KIND_REFLECTOR,
};

static uint32_t er_get_plugin_count(const assay_plugin_factory_t *factory) {
   (void)factory;
   return 1;
}

static const assay_plugin_descriptor_t *er_get_plugin_descriptor(
   const assay_plugin_factory_t *factory, uint32_t index) {
   (void)factory;
   return index == 0 ? &er_descriptor : NULL;
}

static const assay_plugin_t *er_create_plugin(const assay_plugin_factory_t *factory,
                                              const assay_host_t *host, const char *plugin_id) {
   (void)factory;
   if (plugin_id == NULL || strcmp(plugin_id, er_descriptor.id) != 0)
      return NULL;
   er_instance_t *self = calloc(1, sizeof *self);
   if (self == NULL)
      return NULL;
   self->host = host;
   self->plugin.desc = &er_descriptor;
   self->plugin.plugin_data = self;
   self->plugin.init = er_init;
   self->plugin.destroy = er_destroy;
   self->plugin.get_extension = er_get_extension;
   return &self->plugin;
}

static const assay_plugin_factory_t er_factory = {
   .get_plugin_count = er_get_plugin_count,
   .get_plugin_descriptor = er_get_plugin_descriptor,
   .create_plugin = er_create_plugin,
};

static bool er_entry_init(const char *library_path) {
   (void)library_path;
   return true;
}

static void er_entry_deinit(void) {}

static const void *er_get_factory(const char *factory_id) {
   if (factory_id != NULL && strcmp(factory_id, ASSAY_PLUGIN_FACTORY_ID) == 0)
      return &er_factory;
   return NULL;
}

ASSAY_EXPORT const assay_plugin_entry_t assay_entry = {
   .abi_version = ASSAY_VERSION_INIT,
   .init = er_entry_init,
   .deinit = er_entry_deinit,
   .get_factory = er_get_factory,
};
