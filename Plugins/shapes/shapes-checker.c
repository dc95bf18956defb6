/* shapes-checker.c: the exact GenEval-style checker of the shapes world as a verifier
 * (id "shapes-checker").
 *
 * Scores each image against the prompt with the rules of tools/shapes/world.py `check`
 * (re-implemented in world/: same pixel classification, components, shape thresholds,
 * counting and GenEval position rule; see world/world.h):
 *   score = satisfied constraints / constraints, in [0, 1]; 1.0 = the image passes.
 *   Constraints, in order: one count per object group ("a X": at least one; a number word:
 *   exactly that many), then the relation if the prompt has one. The empty prompt has no
 *   constraint and scores 1.
 * Details per image (JSON):
 *   {"pass":false,"score":0.5,
 *    "constraints":[{"what":"count(red circle)=2","ok":false,"found":1},
 *                   {"what":"red circle left of blue square","ok":false,"found":["above"],
 *                    "pairs":1}],
 *    "failed":["two red circles: want exactly 2, found 1", ...],
 *    "detected":[{"shape":"circle","colour":"red","box":[x0,y0,x1,y1],"area":52}, ...]}
 *   (box x1/y1 exclusive; a relation's "found" lists the relations seen over all candidate
 *   pairs, "pairs" how many pairs there were).
 * A prompt outside the grammar is refused with ASSAY_ERR_INVALID_ARGUMENT and a reason
 * naming the part not understood (e.g. unknown word "hexagon"; shapes are circle, ...).
 *
 * Threads: no mutable state at all; every buffer is allocated per call. */
#include <assay/assay.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "world/world.h"

typedef struct sc_instance {
   assay_plugin_t plugin;
   const assay_host_t *host;
} sc_instance_t;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void sc_fail(const sc_instance_t *self, const assay_call_t *call, const char *fmt, ...) {
   char message[768];
   va_list args;
   va_start(args, fmt);
   vsnprintf(message, sizeof message, fmt, args);
   va_end(args);
   if (self->host != NULL && self->host->report_error != NULL)
      self->host->report_error(self->host, call, message);
}

static assay_result_t sc_init(const assay_plugin_t *plugin, const assay_options_t *options) {
   (void)plugin;
   (void)options; /* no options; unknown keys are ignored */
   return ASSAY_OK;
}

static void sc_destroy(const assay_plugin_t *plugin) {
   free(plugin->plugin_data);
}

/* The prompt for a message: at most 120 bytes, control bytes as '?'. */
static void sc_show_prompt(const char *prompt, char out[128]) {
   size_t n = 0;
   for (; prompt[n] != '\0' && n < 120; n++)
      out[n] = (unsigned char)prompt[n] < 0x20 ? '?' : prompt[n];
   if (prompt[n] != '\0') {
      memcpy(out + n, "...", 3);
      n += 3;
   }
   out[n] = '\0';
}

static assay_result_t sc_score(const assay_plugin_t *plugin, const assay_call_t *call,
                               const char *prompt, uint32_t n, const assay_image_t *images,
                               double *scores, const assay_text_out_t *details) {
   const sc_instance_t *self = (const sc_instance_t *)plugin->plugin_data;
   if (prompt == NULL || (n > 0 && (images == NULL || scores == NULL))) {
      sc_fail(self, call, "shapes-checker: score got a NULL prompt, image array or score "
                          "array (host bug)");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   sw_spec_t spec;
   char err[512];
   if (sw_parse(prompt, &spec, err, sizeof err) != 0) {
      char shown[128];
      sc_show_prompt(prompt, shown);
      sc_fail(self, call, "shapes-checker: the prompt \"%s\" is outside the shapes grammar: %s",
              shown, err);
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   for (uint32_t i = 0; i < n; i++) {
      const sw_image_t img = {images[i].width, images[i].height, images[i].stride,
                              images[i].pixels};
      const char *problem = sw_check_image_problem(&img);
      if (problem != NULL) {
         sc_fail(self, call, "shapes-checker: image %u is malformed (%ux%u, stride %u): %s",
                 i, img.width, img.height, img.stride, problem);
         return ASSAY_ERR_INVALID_ARGUMENT;
      }
   }
   for (uint32_t i = 0; i < n; i++) {
      if (self->host != NULL && self->host->is_cancelled != NULL &&
          self->host->is_cancelled(self->host, call)) {
         sc_fail(self, call, "shapes-checker: cancelled");
         return ASSAY_ERR_CANCELLED;
      }
      const sw_image_t img = {images[i].width, images[i].height, images[i].stride,
                              images[i].pixels};
      sw_check_t result;
      if (sw_check(&img, &spec, &result) != 0) {
         sc_fail(self, call, "shapes-checker: out of memory checking image %u (%ux%u)", i,
                 img.width, img.height);
         return ASSAY_ERR_NO_MEMORY;
      }
      scores[i] = result.score;
      if (details != NULL && details->set != NULL) {
         sw_buf_t json;
         sw_buf_init(&json);
         sw_check_json(&spec, &result, &json);
         if (json.oom) {
            sw_buf_free(&json);
            sw_check_free(&result);
            sc_fail(self, call, "shapes-checker: out of memory writing details of image %u",
                    i);
            return ASSAY_ERR_NO_MEMORY;
         }
         details->set(details, i, json.data);
         sw_buf_free(&json);
      }
      sw_check_free(&result);
   }
   return ASSAY_OK;
}

static const assay_verifier_ext_t sc_verifier_ext = {
   .score = sc_score,
};

/* [any-thread] The host asks at submission whether the prompt is inside the grammar. */
static assay_result_t sc_check_prompt(const assay_plugin_t *plugin, const assay_call_t *call,
                                      const char *prompt) {
   const sc_instance_t *self = (const sc_instance_t *)plugin->plugin_data;
   sw_spec_t spec;
   char err[512];
   if (prompt == NULL || sw_parse(prompt, &spec, err, sizeof err) != 0) {
      char shown[128];
      sc_show_prompt(prompt != NULL ? prompt : "", shown);
      sc_fail(self, call, "shapes-checker: the prompt \"%s\" is outside the shapes grammar: %s",
              shown, prompt != NULL ? err : "no prompt");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   return ASSAY_OK;
}

static const assay_prompt_check_ext_t sc_prompt_check_ext = {
   .check_prompt = sc_check_prompt,
};

static const void *sc_get_extension(const assay_plugin_t *plugin, const char *id) {
   (void)plugin;
   if (id != NULL && strcmp(id, ASSAY_EXT_VERIFIER) == 0)
      return &sc_verifier_ext;
   if (id != NULL && strcmp(id, ASSAY_EXT_PROMPT_CHECK) == 0)
      return &sc_prompt_check_ext;
   return NULL;
}

/* ---- Descriptor, factory, entry ------------------------------------------------------ */

static const assay_plugin_descriptor_t sc_descriptor = {
   .abi_version = ASSAY_VERSION_INIT,
   .id = "shapes-checker",
   .name = "Shapes exact checker",
   .version = "1.0.0",
   .description = "GenEval-style exact check of a shapes-world image against its caption: "
                  "fraction of counts and relations satisfied.",
   .kind = ASSAY_KIND_VERIFIER,
};

static uint32_t sc_get_plugin_count(const assay_plugin_factory_t *factory) {
   (void)factory;
   return 1;
}

static const assay_plugin_descriptor_t *sc_get_plugin_descriptor(
   const assay_plugin_factory_t *factory, uint32_t index) {
   (void)factory;
   return index == 0 ? &sc_descriptor : NULL;
}

static const assay_plugin_t *sc_create_plugin(const assay_plugin_factory_t *factory,
                                              const assay_host_t *host, const char *plugin_id) {
   (void)factory;
   if (plugin_id == NULL || strcmp(plugin_id, sc_descriptor.id) != 0)
      return NULL;
   sc_instance_t *self = calloc(1, sizeof *self);
   if (self == NULL)
      return NULL;
   self->host = host;
   self->plugin.desc = &sc_descriptor;
   self->plugin.plugin_data = self;
   self->plugin.init = sc_init;
   self->plugin.destroy = sc_destroy;
   self->plugin.get_extension = sc_get_extension;
   return &self->plugin;
}

static const assay_plugin_factory_t sc_factory = {
   .get_plugin_count = sc_get_plugin_count,
   .get_plugin_descriptor = sc_get_plugin_descriptor,
   .create_plugin = sc_create_plugin,
};

static bool sc_entry_init(const char *library_path) {
   (void)library_path;
   return true;
}

static void sc_entry_deinit(void) {}

static const void *sc_get_factory(const char *factory_id) {
   if (factory_id != NULL && strcmp(factory_id, ASSAY_PLUGIN_FACTORY_ID) == 0)
      return &sc_factory;
   return NULL;
}

ASSAY_EXPORT const assay_plugin_entry_t assay_entry = {
   .abi_version = ASSAY_VERSION_INIT,
   .init = sc_entry_init,
   .deinit = sc_entry_deinit,
   .get_factory = sc_get_factory,
};
