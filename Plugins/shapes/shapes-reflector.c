/* shapes-reflector.c: ReflectionFlow-style edit instructions for shapes-world images
 * (id "shapes-reflector").
 *
 * The verifier `details` the host passes are not used (their form belongs to each
 * verifier): the reflector re-runs the exact checker (world/) on the image itself against
 * the prompt, then writes per image (rules in world/reflect.c):
 *   {"feedback":"Add one more red circle. Move the red circle to the left of the blue square.",
 *    "negative_prompt":"a blue square left of a red circle",   (failing images only, when
 *                                                                 there is something to name)
 *    "revised_prompt":"a red circle left of a blue square",    (always parses)
 *    "pass":false,"score":0.5,"round":2}
 * One sentence per failed constraint: add / remove / recolour ("Make the blue triangle
 * yellow.") / reshape ("Turn the red square into a circle.") / move. A passing image gets
 * "The image matches the prompt." and no negative prompt. round = 1 + the number of
 * earlier reflections in history[i] (1 without history).
 * A prompt outside the grammar is refused like shapes-checker does.
 *
 * Views (assay.reflector-views.draft/1, SF2's visual reflection, Eq. 12-14): the host shows
 * each candidate's trajectory as a "preview" (the decoded early x0-prediction: blurry,
 * colours and layout roughly right), a "sketch" (the same trajectory finished cheaply) and
 * maybe a "final". The checker runs on the primary view (final, else sketch, else the last
 * known view, else the last view), which gives the feedback and revised prompt: it is the
 * most complete. The preview is there for the negative prompt: what is wrong in BOTH is what
 * the trajectory keeps, so a negative candidate of the primary view (a wrong-coloured or
 * wrong-shaped object, an excess, a wrong relation) is kept only when the checker sees it in
 * the preview too. The preview is trusted on colours and layout, not shapes (blur hides them
 * first): its objects are known by colour where that tells them apart, else by shape (an
 * ambiguous blob counts as every shape it may be). A preview that
 * shows none drops the negative prompt (the defect is the cheap finish's, not the
 * trajectory's); an unreadable preview (the checker finds no
 * object in it) is ignored.
 * Added fields: "views" (the views used, e.g. ["preview","sketch"]), "confirmed_by_preview",
 * and "unconfirmed_negative" (the primary's negative the preview did not show). Unknown view
 * names are ignored; 1..8 views; the images of the used views are validated like reflect's.
 *
 * Threads: no mutable state at all; every buffer is allocated per call. */
#include <assay/assay.h>
#include <assay/ext/draft/reflector-views.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "world/world.h"

typedef struct sr_instance {
   assay_plugin_t plugin;
   const assay_host_t *host;
} sr_instance_t;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void sr_fail(const sr_instance_t *self, const assay_call_t *call, const char *fmt, ...) {
   char message[768];
   va_list args;
   va_start(args, fmt);
   vsnprintf(message, sizeof message, fmt, args);
   va_end(args);
   if (self->host != NULL && self->host->report_error != NULL)
      self->host->report_error(self->host, call, message);
}

static assay_result_t sr_init(const assay_plugin_t *plugin, const assay_options_t *options) {
   (void)plugin;
   (void)options; /* no options; unknown keys are ignored */
   return ASSAY_OK;
}

static void sr_destroy(const assay_plugin_t *plugin) {
   free(plugin->plugin_data);
}

/* The prompt for a message: at most 120 bytes, control bytes as '?'. */
static void sr_show_prompt(const char *prompt, char out[128]) {
   size_t n = 0;
   for (; prompt[n] != '\0' && n < 120; n++)
      out[n] = (unsigned char)prompt[n] < 0x20 ? '?' : prompt[n];
   if (prompt[n] != '\0') {
      memcpy(out + n, "...", 3);
      n += 3;
   }
   out[n] = '\0';
}

/* Number of elements of a JSON array (one image's history), or -1 if `json` is not an
 * array. Only the top level is counted; strings and nesting are skipped. */
static long sr_count_array(const char *json) {
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
         seen_value = 1;
   }
   return -1;
}

/* Parses the prompt; fails the call with the grammar's reason when it is outside it. */
static int sr_parse_prompt(const sr_instance_t *self, const assay_call_t *call, const char *prompt,
                           sw_spec_t *spec) {
   char err[512];
   if (sw_parse(prompt, spec, err, sizeof err) == 0)
      return 1;
   char shown[128];
   sr_show_prompt(prompt, shown);
   sr_fail(self, call, "shapes-reflector: the prompt \"%s\" is outside the shapes grammar: %s",
           shown, err);
   return 0;
}

static sw_image_t sr_image(const assay_image_t *image) {
   const sw_image_t img = {image->width, image->height, image->stride, image->pixels};
   return img;
}

/* Whether history[i] (when given) is a JSON array of earlier reflections; fails the call
 * with a reason otherwise. */
static int sr_history_ok(const sr_instance_t *self, const assay_call_t *call,
                         const char *const *history, uint32_t i) {
   if (history == NULL || history[i] == NULL || sr_count_array(history[i]) >= 0)
      return 1;
   sr_fail(self, call, "shapes-reflector: history[%u] is not a JSON array of earlier "
                       "reflections (host bug)", i);
   return 0;
}

/* Whether the host cancelled the call (then the reason is set). */
static int sr_cancelled(const sr_instance_t *self, const assay_call_t *call) {
   if (self->host == NULL || self->host->is_cancelled == NULL ||
       !self->host->is_cancelled(self->host, call))
      return 0;
   sr_fail(self, call, "shapes-reflector: cancelled");
   return 1;
}

static assay_result_t sr_reflect(const assay_plugin_t *plugin, const assay_call_t *call,
                                 const char *prompt, uint32_t n, const assay_image_t *images,
                                 const char *const *details, const char *const *history,
                                 const assay_text_out_t *out) {
   const sr_instance_t *self = (const sr_instance_t *)plugin->plugin_data;
   (void)details; /* not relied upon: the checker is re-run on the image */
   if (prompt == NULL || out == NULL || out->set == NULL || (n > 0 && images == NULL)) {
      sr_fail(self, call, "shapes-reflector: reflect got a NULL prompt, image array or "
                          "output sink (host bug)");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   sw_spec_t spec;
   if (!sr_parse_prompt(self, call, prompt, &spec))
      return ASSAY_ERR_INVALID_ARGUMENT;
   for (uint32_t i = 0; i < n; i++) {
      const sw_image_t img = sr_image(&images[i]);
      const char *problem = sw_check_image_problem(&img);
      if (problem != NULL) {
         sr_fail(self, call, "shapes-reflector: image %u is malformed (%ux%u, stride %u): %s",
                 i, img.width, img.height, img.stride, problem);
         return ASSAY_ERR_INVALID_ARGUMENT;
      }
      if (!sr_history_ok(self, call, history, i))
         return ASSAY_ERR_INVALID_ARGUMENT;
   }
   for (uint32_t i = 0; i < n; i++) {
      if (sr_cancelled(self, call))
         return ASSAY_ERR_CANCELLED;
      const sw_image_t img = sr_image(&images[i]);
      const long round =
         history != NULL && history[i] != NULL ? sr_count_array(history[i]) + 1 : 1;
      sw_check_t result;
      if (sw_check(&img, &spec, &result) != 0) {
         sr_fail(self, call, "shapes-reflector: out of memory checking image %u", i);
         return ASSAY_ERR_NO_MEMORY;
      }
      sw_buf_t json;
      sw_buf_init(&json);
      sw_reflect_json(&spec, &result, round, &json);
      sw_check_free(&result);
      if (json.oom) {
         sw_buf_free(&json);
         sr_fail(self, call, "shapes-reflector: out of memory writing reflection %u", i);
         return ASSAY_ERR_NO_MEMORY;
      }
      out->set(out, i, json.data);
      sw_buf_free(&json);
   }
   return ASSAY_OK;
}

#define SR_MAX_VIEWS 8

static assay_result_t sr_reflect_views(const assay_plugin_t *plugin, const assay_call_t *call,
                                       const char *prompt, uint32_t n, uint32_t views,
                                       const char *const *view_names,
                                       const assay_image_t *images, const char *const *details,
                                       const char *const *history,
                                       const assay_text_out_t *out) {
   const sr_instance_t *self = (const sr_instance_t *)plugin->plugin_data;
   (void)details; /* not relied upon: the checker is re-run on the images */
   if (prompt == NULL || out == NULL || out->set == NULL || (n > 0 && images == NULL) ||
       (views > 0 && view_names == NULL)) {
      sr_fail(self, call, "shapes-reflector: reflect_views got a NULL prompt, image array, "
                          "view-name array or output sink (host bug)");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   if (views == 0 || views > SR_MAX_VIEWS) {
      sr_fail(self, call, "shapes-reflector: reflect_views takes 1 to %d views per candidate, "
                          "got %u (host bug)", SR_MAX_VIEWS, views);
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   /* the primary view: final, else sketch, else the last known view, else the last view;
    * the preview confirms it when it is another view */
   int final = -1, sketch = -1, preview = -1, last_known = -1;
   for (uint32_t j = 0; j < views; j++) {
      const char *name = view_names[j];
      if (name == NULL) {
         sr_fail(self, call, "shapes-reflector: reflect_views got a NULL name for view %u "
                             "(host bug)", j);
         return ASSAY_ERR_INVALID_ARGUMENT;
      }
      int *slot = strcmp(name, ASSAY_VIEW_FINAL) == 0     ? &final
                  : strcmp(name, ASSAY_VIEW_SKETCH) == 0  ? &sketch
                  : strcmp(name, ASSAY_VIEW_PREVIEW) == 0 ? &preview
                                                          : NULL;
      if (slot == NULL)
         continue; /* unknown views are ignored */
      if (*slot >= 0) {
         sr_fail(self, call, "shapes-reflector: reflect_views got the view \"%s\" twice "
                             "(views %d and %u; host bug)", name, *slot, j);
         return ASSAY_ERR_INVALID_ARGUMENT;
      }
      *slot = (int)j;
      last_known = (int)j;
   }
   const int primary = final >= 0    ? final
                       : sketch >= 0 ? sketch
                       : last_known >= 0 ? last_known : (int)views - 1;
   if (preview == primary)
      preview = -1;
   sw_spec_t spec;
   if (!sr_parse_prompt(self, call, prompt, &spec))
      return ASSAY_ERR_INVALID_ARGUMENT;
   for (uint32_t i = 0; i < n; i++) {
      for (int k = 0; k < 2; k++) {
         const int j = k == 0 ? primary : preview;
         if (j < 0)
            continue;
         const sw_image_t img = sr_image(&images[(size_t)i * views + (size_t)j]);
         const char *problem = sw_check_image_problem(&img);
         if (problem != NULL) {
            sr_fail(self, call,
                    "shapes-reflector: image %u's view %d (\"%.40s\") is malformed (%ux%u, "
                    "stride %u): %s", i, j, view_names[j], img.width, img.height, img.stride,
                    problem);
            return ASSAY_ERR_INVALID_ARGUMENT;
         }
      }
      if (!sr_history_ok(self, call, history, i))
         return ASSAY_ERR_INVALID_ARGUMENT;
   }
   for (uint32_t i = 0; i < n; i++) {
      if (sr_cancelled(self, call))
         return ASSAY_ERR_CANCELLED;
      const long round =
         history != NULL && history[i] != NULL ? sr_count_array(history[i]) + 1 : 1;
      const sw_image_t img = sr_image(&images[(size_t)i * views + (size_t)primary]);
      sw_check_t result, seen;
      if (sw_check(&img, &spec, &result) != 0) {
         sr_fail(self, call, "shapes-reflector: out of memory checking image %u", i);
         return ASSAY_ERR_NO_MEMORY;
      }
      if (preview >= 0) {
         const sw_image_t pimg = sr_image(&images[(size_t)i * views + (size_t)preview]);
         if (sw_check(&pimg, &spec, &seen) != 0) {
            sw_check_free(&result);
            sr_fail(self, call, "shapes-reflector: out of memory checking image %u", i);
            return ASSAY_ERR_NO_MEMORY;
         }
      }
      sw_buf_t json;
      sw_buf_init(&json);
      sw_reflect_views_json(&spec, &result, preview >= 0 ? &seen : NULL, view_names[primary],
                            round, &json);
      sw_check_free(&result);
      if (preview >= 0)
         sw_check_free(&seen);
      if (json.oom) {
         sw_buf_free(&json);
         sr_fail(self, call, "shapes-reflector: out of memory writing reflection %u", i);
         return ASSAY_ERR_NO_MEMORY;
      }
      out->set(out, i, json.data);
      sw_buf_free(&json);
   }
   return ASSAY_OK;
}

static const assay_reflector_ext_t sr_reflector_ext = {
   .reflect = sr_reflect,
};

static const assay_reflector_views_ext_t sr_reflector_views_ext = {
   .reflect_views = sr_reflect_views,
};

static const void *sr_get_extension(const assay_plugin_t *plugin, const char *id) {
   (void)plugin;
   if (id != NULL && strcmp(id, ASSAY_EXT_REFLECTOR) == 0)
      return &sr_reflector_ext;
   if (id != NULL && strcmp(id, ASSAY_EXT_REFLECTOR_VIEWS_DRAFT) == 0)
      return &sr_reflector_views_ext;
   return NULL;
}

/* ---- Descriptor, factory, entry ------------------------------------------------------ */

static const assay_plugin_descriptor_t sr_descriptor = {
   .abi_version = ASSAY_VERSION_INIT,
   .id = "shapes-reflector",
   .name = "Shapes reflector",
   .version = "1.0.0",
   .description = "Edit instructions (add, remove, recolour, reshape, move) from the exact "
                  "shapes checker, with a negative and a revised prompt.",
   .kind = ASSAY_KIND_REFLECTOR,
};

static uint32_t sr_get_plugin_count(const assay_plugin_factory_t *factory) {
   (void)factory;
   return 1;
}

static const assay_plugin_descriptor_t *sr_get_plugin_descriptor(
   const assay_plugin_factory_t *factory, uint32_t index) {
   (void)factory;
   return index == 0 ? &sr_descriptor : NULL;
}

static const assay_plugin_t *sr_create_plugin(const assay_plugin_factory_t *factory,
                                              const assay_host_t *host, const char *plugin_id) {
   (void)factory;
   if (plugin_id == NULL || strcmp(plugin_id, sr_descriptor.id) != 0)
      return NULL;
   sr_instance_t *self = calloc(1, sizeof *self);
   if (self == NULL)
      return NULL;
   self->host = host;
   self->plugin.desc = &sr_descriptor;
   self->plugin.plugin_data = self;
   self->plugin.init = sr_init;
   self->plugin.destroy = sr_destroy;
   self->plugin.get_extension = sr_get_extension;
   return &self->plugin;
}

static const assay_plugin_factory_t sr_factory = {
   .get_plugin_count = sr_get_plugin_count,
   .get_plugin_descriptor = sr_get_plugin_descriptor,
   .create_plugin = sr_create_plugin,
};

static bool sr_entry_init(const char *library_path) {
   (void)library_path;
   return true;
}

static void sr_entry_deinit(void) {}

static const void *sr_get_factory(const char *factory_id) {
   if (factory_id != NULL && strcmp(factory_id, ASSAY_PLUGIN_FACTORY_ID) == 0)
      return &sr_factory;
   return NULL;
}

ASSAY_EXPORT const assay_plugin_entry_t assay_entry = {
   .abi_version = ASSAY_VERSION_INIT,
   .init = sr_entry_init,
   .deinit = sr_entry_deinit,
   .get_factory = sr_get_factory,
};
