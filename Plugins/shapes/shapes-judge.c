/* shapes-judge.c: an independent, LEARNED evaluation judge for the shapes world (id
 * "shapes-judge").
 *
 * Every pass rate used to be measured with shapes-checker, which is also the verifier search
 * optimises, so search finds the checker's mistakes ("verifier hacking"). This judge detects
 * objects with a small CenterNet-style CNN (tools/judge/train.py; card tools/judge/README.md)
 * instead of the checker's pixel classification, components and template fits, so its errors
 * are not the checker's; a benchmark row is then judged by a verifier that did not select it.
 * Only the benchmark's rules are shared: the caption grammar (world/parse.c) and GenEval's
 * counting and position rules (judge/judge.c, world.py `relative_position`).
 *
 *   score = satisfied constraints / constraints, in [0, 1]; 1.0 = the image passes.
 *   Constraints: one count per object group ("a X": at least one; a number word: exactly),
 *   then the relation if the prompt has one; the empty prompt has none and scores 1.
 * Details per image (JSON):
 *   {"pass":false,"score":0.5,"failed":["count 'two red circles': want exactly 2, found 1"],
 *    "detected":[{"shape":"circle","colour":"red","box":[x0,y0,x1,y1],"confidence":0.97}]}
 *   (box in the image's pixels, x1/y1 exclusive; confidence = the detector's sigmoid).
 * A prompt outside the grammar is refused with ASSAY_ERR_INVALID_ARGUMENT (score and
 * assay.prompt-check/1), like shapes-checker.
 * Images: any width x height from 1 to 4096 a side; 32x32 is native, other sizes are
 * resampled to 32x32 by nearest neighbour (deterministic) and boxes scaled back.
 * Weights: shapes-judge.safetensors beside the installed library, or the instance option
 * `weights` (a path). A missing, truncated or corrupt file is refused in init with the reason
 * (ASSAY_ERR_IO).
 *
 * Threads: the model is read-only after init, every buffer is allocated per call; concurrent
 * calls are safe. Deterministic: the same inputs give bit-identical scores. */
#include <assay/assay.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "judge/judge.h"

#define SJP_WEIGHTS_FILE "shapes-judge.safetensors"
#define SJP_MAX_PATH 4096

/* Directory of the installed library (where the weights live), set once by the entry's init
 * on the main thread before any instance exists; read-only afterwards. */
static char sjp_library_dir[SJP_MAX_PATH];

typedef struct sjp_instance {
   assay_plugin_t plugin;
   const assay_host_t *host;
   jg_model *model;
} sjp_instance_t;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void sjp_fail(const sjp_instance_t *self, const assay_call_t *call, const char *fmt, ...) {
   char message[1200];
   va_list args;
   va_start(args, fmt);
   vsnprintf(message, sizeof message, fmt, args);
   va_end(args);
   if (self->host != NULL && self->host->report_error != NULL)
      self->host->report_error(self->host, call, message);
}

static assay_result_t sjp_init(const assay_plugin_t *plugin, const assay_options_t *options) {
   sjp_instance_t *self = (sjp_instance_t *)plugin->plugin_data;
   const char *weights = NULL;
   for (uint32_t i = 0; options != NULL && i < options->count; i++) {
      const assay_option_t *opt = &options->items[i];
      if (opt->key == NULL || strcmp(opt->key, "weights") != 0)
         continue; /* unknown keys are ignored */
      if (opt->type != ASSAY_OPTION_STRING || opt->string == NULL || opt->string[0] == '\0') {
         sjp_fail(self, NULL, "shapes-judge: option \"weights\" must be a non-empty string: "
                              "the path of a shapes-judge.safetensors file");
         return ASSAY_ERR_INVALID_ARGUMENT;
      }
      weights = opt->string;
   }
   char path[SJP_MAX_PATH];
   int n;
   if (weights != NULL)
      n = snprintf(path, sizeof path, "%s", weights);
   else if (sjp_library_dir[0] != '\0')
      n = snprintf(path, sizeof path, "%s/%s", sjp_library_dir, SJP_WEIGHTS_FILE);
   else
      n = snprintf(path, sizeof path, "%s", SJP_WEIGHTS_FILE);
   if (n < 0 || (size_t)n >= sizeof path) {
      sjp_fail(self, NULL, "shapes-judge: the weights path is longer than %d bytes",
               SJP_MAX_PATH - 1);
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   char err[768];
   self->model = jg_model_load(path, err, sizeof err);
   if (self->model == NULL) {
      sjp_fail(self, NULL, "shapes-judge: cannot use the weights: %s. Put a valid %s beside "
                           "shapes-judge.so or set the instance option weights = "
                           "\"/path/to/shapes-judge.safetensors\"", err, SJP_WEIGHTS_FILE);
      return ASSAY_ERR_IO;
   }
   if (self->host != NULL && self->host->log != NULL) {
      char line[SJP_MAX_PATH + 160];
      const char *steps = jg_meta(self->model, "steps");
      snprintf(line, sizeof line, "shapes-judge: loaded %s (%s training steps, threshold %g)",
               path, steps ? steps : "?", jg_threshold(self->model));
      self->host->log(self->host, NULL, ASSAY_LOG_INFO, line);
   }
   return ASSAY_OK;
}

static void sjp_destroy(const assay_plugin_t *plugin) {
   sjp_instance_t *self = (sjp_instance_t *)plugin->plugin_data;
   jg_model_free(self->model);
   free(self);
}

/* The prompt for a message: at most 120 bytes, control bytes as '?'. */
static void sjp_show_prompt(const char *prompt, char out[128]) {
   size_t n = 0;
   for (; prompt[n] != '\0' && n < 120; n++)
      out[n] = (unsigned char)prompt[n] < 0x20 ? '?' : prompt[n];
   if (prompt[n] != '\0') {
      memcpy(out + n, "...", 3);
      n += 3;
   }
   out[n] = '\0';
}

static assay_result_t sjp_score(const assay_plugin_t *plugin, const assay_call_t *call,
                                const char *prompt, uint32_t n, const assay_image_t *images,
                                double *scores, const assay_text_out_t *details) {
   const sjp_instance_t *self = (const sjp_instance_t *)plugin->plugin_data;
   if (self->model == NULL) {
      sjp_fail(self, call, "shapes-judge: score called on an instance whose init failed "
                           "(host bug)");
      return ASSAY_ERR_INTERNAL;
   }
   if (prompt == NULL || (n > 0 && (images == NULL || scores == NULL))) {
      sjp_fail(self, call, "shapes-judge: score got a NULL prompt, image array or score "
                           "array (host bug)");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   sw_spec_t spec;
   char err[512];
   if (sw_parse(prompt, &spec, err, sizeof err) != 0) {
      char shown[128];
      sjp_show_prompt(prompt, shown);
      sjp_fail(self, call, "shapes-judge: the prompt \"%s\" is outside the shapes grammar: %s",
               shown, err);
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   for (uint32_t i = 0; i < n; i++) {
      const assay_image_t *im = &images[i];
      const char *problem = NULL;
      if (im->pixels == NULL)
         problem = "no pixels";
      else if (im->width < 1 || im->height < 1)
         problem = "an empty image";
      else if (im->width > JG_MAX_SIDE || im->height > JG_MAX_SIDE)
         problem = "more than 4096 pixels a side";
      else if (im->stride < im->width * 3u)
         problem = "the stride is less than 3 * width bytes";
      if (problem != NULL) {
         sjp_fail(self, call, "shapes-judge: image %u is malformed (%ux%u, stride %u): %s; "
                              "this verifier scores RGB images (32x32 native, other sizes are "
                              "resampled)", i, im->width, im->height, im->stride, problem);
         return ASSAY_ERR_INVALID_ARGUMENT;
      }
   }
   jg_result_t *r = malloc(sizeof *r);
   if (r == NULL) {
      sjp_fail(self, call, "shapes-judge: out of memory");
      return ASSAY_ERR_NO_MEMORY;
   }
   for (uint32_t i = 0; i < n; i++) {
      if (self->host != NULL && self->host->is_cancelled != NULL &&
          self->host->is_cancelled(self->host, call)) {
         free(r);
         sjp_fail(self, call, "shapes-judge: cancelled");
         return ASSAY_ERR_CANCELLED;
      }
      const assay_image_t *im = &images[i];
      if (jg_judge(self->model, im->pixels, im->width, im->height, im->stride, &spec, r) != 0) {
         free(r);
         sjp_fail(self, call, "shapes-judge: out of memory judging image %u", i);
         return ASSAY_ERR_NO_MEMORY;
      }
      scores[i] = r->score;
      if (details != NULL && details->set != NULL) {
         char *json = jg_result_json(r, im->width, im->height);
         if (json == NULL) {
            free(r);
            sjp_fail(self, call, "shapes-judge: out of memory writing details of image %u", i);
            return ASSAY_ERR_NO_MEMORY;
         }
         details->set(details, i, json);
         free(json);
      }
   }
   free(r);
   return ASSAY_OK;
}

static const assay_verifier_ext_t sjp_verifier_ext = {
   .score = sjp_score,
};

/* [any-thread] The host asks at submission whether the prompt is inside the grammar. */
static assay_result_t sjp_check_prompt(const assay_plugin_t *plugin, const assay_call_t *call,
                                       const char *prompt) {
   const sjp_instance_t *self = (const sjp_instance_t *)plugin->plugin_data;
   sw_spec_t spec;
   char err[512];
   if (prompt == NULL || sw_parse(prompt, &spec, err, sizeof err) != 0) {
      char shown[128];
      sjp_show_prompt(prompt != NULL ? prompt : "", shown);
      sjp_fail(self, call, "shapes-judge: the prompt \"%s\" is outside the shapes grammar: %s",
               shown, prompt != NULL ? err : "no prompt");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   return ASSAY_OK;
}

static const assay_prompt_check_ext_t sjp_prompt_check_ext = {
   .check_prompt = sjp_check_prompt,
};

static const void *sjp_get_extension(const assay_plugin_t *plugin, const char *id) {
   (void)plugin;
   if (id != NULL && strcmp(id, ASSAY_EXT_VERIFIER) == 0)
      return &sjp_verifier_ext;
   if (id != NULL && strcmp(id, ASSAY_EXT_PROMPT_CHECK) == 0)
      return &sjp_prompt_check_ext;
   return NULL;
}

/* ---- Descriptor, factory, entry ------------------------------------------------------ */

static const assay_plugin_descriptor_t sjp_descriptor = {
   .abi_version = ASSAY_VERSION_INIT,
   .id = "shapes-judge",
   .name = "Shapes judge (learned, independent of the checker)",
   .version = "1.0.0",
   .description = "Independent evaluation judge for the shapes world: a learned CenterNet-style "
                  "detector plus the GenEval rules; fraction of counts and relations satisfied. "
                  "Use it to measure pass rates of images another verifier selected.",
   .kind = ASSAY_KIND_VERIFIER,
};

static uint32_t sjp_get_plugin_count(const assay_plugin_factory_t *factory) {
   (void)factory;
   return 1;
}

static const assay_plugin_descriptor_t *sjp_get_plugin_descriptor(
   const assay_plugin_factory_t *factory, uint32_t index) {
   (void)factory;
   return index == 0 ? &sjp_descriptor : NULL;
}

static const assay_plugin_t *sjp_create_plugin(const assay_plugin_factory_t *factory,
                                               const assay_host_t *host,
                                               const char *plugin_id) {
   (void)factory;
   if (plugin_id == NULL || strcmp(plugin_id, sjp_descriptor.id) != 0)
      return NULL;
   sjp_instance_t *self = calloc(1, sizeof *self);
   if (self == NULL)
      return NULL;
   self->host = host;
   self->plugin.desc = &sjp_descriptor;
   self->plugin.plugin_data = self;
   self->plugin.init = sjp_init;
   self->plugin.destroy = sjp_destroy;
   self->plugin.get_extension = sjp_get_extension;
   return &self->plugin;
}

static const assay_plugin_factory_t sjp_factory = {
   .get_plugin_count = sjp_get_plugin_count,
   .get_plugin_descriptor = sjp_get_plugin_descriptor,
   .create_plugin = sjp_create_plugin,
};

/* Remembers the directory of the installed library (where the weights live). */
static bool sjp_entry_init(const char *library_path) {
   sjp_library_dir[0] = '\0';
   if (library_path == NULL)
      return true;
   const char *slash = strrchr(library_path, '/');
   if (slash == NULL)
      return true; /* bare file name: the weights are looked up in the current directory */
   size_t len = (size_t)(slash - library_path);
   if (len == 0)
      len = 1; /* the library is in "/" */
   if (len >= sizeof sjp_library_dir)
      return true; /* too long: init will then need the "weights" option */
   memcpy(sjp_library_dir, library_path, len);
   sjp_library_dir[len] = '\0';
   return true;
}

static void sjp_entry_deinit(void) {}

static const void *sjp_get_factory(const char *factory_id) {
   if (factory_id != NULL && strcmp(factory_id, ASSAY_PLUGIN_FACTORY_ID) == 0)
      return &sjp_factory;
   return NULL;
}

ASSAY_EXPORT const assay_plugin_entry_t assay_entry = {
   .abi_version = ASSAY_VERSION_INIT,
   .init = sjp_entry_init,
   .deinit = sjp_entry_deinit,
   .get_factory = sjp_get_factory,
};
