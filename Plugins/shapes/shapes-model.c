/* shapes-model.c: the "shapes" text-to-image rectified-flow model (tools/shapes/model.py),
 * its few-step student "shapes-turbo" and its ReflectionFlow corrector "shapes-corrector" as
 * Assay model plugins, running on the C engine in engine/ (OpenBLAS sgemm). One library, three
 * plugin ids, one engine with different weights:
 *
 *   "shapes"           the base model: 20 Euler steps, guidance 1.75 (shapes-base.safetensors);
 *   "shapes-turbo"     the distilled student (tools/shapes/distill.py): 4 steps, guidance 1,
 *                      guidance distilled in, so it has no negative prompt; it also finishes a
 *                      base trajectory from any x_t in a few steps (SF2 Co-Fusion sketches)
 *                      (shapes-turbo.safetensors; refused unless its metadata names a teacher);
 *   "shapes-corrector" the base model tuned to take a flawed image and a reflection (what to
 *                      change) besides the prompt and draw the corrected image
 *                      (tools/corrector/, model card weights/shapes-corrector.md;
 *                      shapes-corrector.safetensors, format assay-shapes-corrector-v1, refused
 *                      unless its metadata names the base_sha256 it was tuned from). Also
 *                      "assay.model-reference.draft/1": encode_reference(prompt, instruction,
 *                      32x32 RGB image) gives the condition; the host's CFG negative is
 *                      encode_reference(negative or "", "", the same image). Its plain encode(text)
 *                      is the prompt with an empty reflection and no reference image (rarely
 *                      trained: use "shapes" for plain generation). Instruction words outside
 *                      its vocabulary map to <unk>; at most 24 are read (get_info).
 *   Base weights under "shapes-corrector", and corrector weights under "shapes" or
 *   "shapes-turbo", are refused with the reason.
 *
 *   kind model, interfaces "assay.model/1", "assay.model-blocks/1" and (draft)
 *   "assay.latent-space.draft/1"; shapes-corrector also "assay.model-reference.draft/1".
 *   Latent = pixel space: 3 x 32 x 32 floats in [-1, 1] (CHW, RGB); image 32 x 32.
 *   Latent-space id "io.assay.shapes/rgb-<C>x<H>x<W>/1" from the weights' config
 *   ("io.assay.shapes/rgb-3x32x32/1"): the same for shapes and shapes-turbo (the student
 *   was distilled on the base model's trajectories in this very space, so a latent hands
 *   over between them), another one for a differently shaped model.
 *   Condition = the text encoder's output for the prompt: max_tokens x width token states
 *   followed by their mean (8 x 160 + 160 = 1440 floats for the default config). The
 *   corrector's: caption 8 x 160, reflection 24 x 160, the caption's mean 160, then the
 *   reference image 3 x 32 x 32 in [-1, 1] (8352 floats); the latent space is the base
 *   model's (same id: a base sample is a corrector's reference and starting point alike).
 *   Sampling defaults (steps, guidance, schedule shift) come from the weights' metadata.
 *
 * Weights: the id's file beside the installed library (the path the host passes to the
 * entry's init), or the instance option `weights` (a path). Missing, truncated or corrupt
 * files make init fail with the reason (nothing is read out of bounds).
 * Options: weights (string), threads (number, 1..64, default 1: OpenBLAS threads per
 * call; the daemon already runs jobs in parallel. OpenBLAS has one process-wide setting, so
 * the last instance initialised decides).
 *
 * Threads: the engine is read-only after init and hands out per-call scratch buffers from
 * a mutex-guarded pool, so encode, velocity, decode and the block functions may run on
 * many job threads at once. The only global state is the library directory, written once
 * in the entry's init (main thread) before any instance exists. */

#include <assay/assay.h>
#include <assay/ext/draft/latent-space.h>
#include <assay/ext/draft/model-reference.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

#define SM_MAX_PATH 4096

/* One plugin id of this library: its descriptor and the weights it runs. */
typedef struct sm_variant {
   assay_plugin_descriptor_t descriptor;
   const char *weights_file; /* default file name, beside the library */
   bool student;             /* weights must be a distilled student (metadata teacher_sha256) */
   bool corrector;           /* weights must be a corrector export (and only this id takes one) */
} sm_variant_t;

static const sm_variant_t sm_variants[] = {
   {
      .descriptor = {
         .abi_version = ASSAY_VERSION_INIT,
         .id = "shapes",
         .name = "Shapes text-to-image flow model",
         .version = "1.1.0",
         .description = "Small rectified-flow model of coloured shapes (32x32 RGB, pixel space), "
                        "C engine on OpenBLAS; also exposes its transformer blocks for caching samplers.",
         .kind = ASSAY_KIND_MODEL,
      },
      .weights_file = "shapes-base.safetensors",
      .student = false,
   },
   {
      .descriptor = {
         .abi_version = ASSAY_VERSION_INIT,
         .id = "shapes-turbo",
         .name = "Shapes turbo (4-step student)",
         .version = "1.1.0",
         .description = "The shapes model distilled for 4 steps with guidance built in (no negative "
                        "prompt): a fast sketcher that also finishes a base trajectory from its x_t.",
         .kind = ASSAY_KIND_MODEL,
      },
      .weights_file = "shapes-turbo.safetensors",
      .student = true,
   },
   {
      .descriptor = {
         .abi_version = ASSAY_VERSION_INIT,
         .id = "shapes-corrector",
         .name = "Shapes corrector (ReflectionFlow)",
         .version = "1.0.0",
         .description = "The shapes model tuned to redraw a flawed image following a reflection "
                        "(\"Make the green triangle blue.\"): condition = prompt + instruction + "
                        "reference image (assay.model-reference.draft/1).",
         .kind = ASSAY_KIND_MODEL,
      },
      .weights_file = "shapes-corrector.safetensors",
      .corrector = true,
   },
};
#define SM_VARIANT_COUNT (sizeof sm_variants / sizeof sm_variants[0])

/* Directory of the installed library, set once by sm_entry_init. */
static char sm_library_dir[SM_MAX_PATH];

typedef struct sm_instance {
   assay_plugin_t plugin;
   const sm_variant_t *variant;
   const assay_host_t *host;
   shapes_engine_t *engine;
   const shapes_config_t *cfg;
   int threads;
   char weights_path[SM_MAX_PATH];
   char latent_id[64]; /* assay.latent-space.draft/1 id, set by init */
} sm_instance_t;

static const sm_instance_t *sm_self(const assay_plugin_t *plugin) {
   return (const sm_instance_t *)plugin->plugin_data;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void sm_fail(const sm_instance_t *self, const assay_call_t *call, const char *fmt, ...) {
   char message[1024];
   va_list args;
   va_start(args, fmt);
   vsnprintf(message, sizeof message, fmt, args);
   va_end(args);
   if (self->host != NULL && self->host->report_error != NULL) {
      char line[1100];
      snprintf(line, sizeof line, "%s: %s", self->variant->descriptor.id, message); /* names the plugin id */
      self->host->report_error(self->host, call, line);
   }
}

static assay_result_t sm_engine_code(int rc) {
   switch (rc) {
   case SHAPES_OK: return ASSAY_OK;
   case SHAPES_EINVAL: return ASSAY_ERR_INVALID_ARGUMENT;
   case SHAPES_ENOMEM: return ASSAY_ERR_NO_MEMORY;
   case SHAPES_EIO: return ASSAY_ERR_IO;
   default: return ASSAY_ERR_INTERNAL;
   }
}

/* ---- lifecycle --------------------------------------------------------------------- */

static assay_result_t sm_init(const assay_plugin_t *plugin, const assay_options_t *options) {
   sm_instance_t *self = (sm_instance_t *)plugin->plugin_data;
   const char *id = self->variant->descriptor.id, *file = self->variant->weights_file;
   const char *weights = NULL;
   self->threads = 1;
   for (uint32_t i = 0; options != NULL && i < options->count; i++) {
      const assay_option_t *opt = &options->items[i];
      if (strcmp(opt->key, "weights") == 0) {
         if (opt->type != ASSAY_OPTION_STRING || opt->string == NULL || opt->string[0] == 0) {
            sm_fail(self, NULL, "option \"weights\" must be a non-empty string: the path "
                                "of a shapes-*.safetensors file");
            return ASSAY_ERR_INVALID_ARGUMENT;
         }
         weights = opt->string;
      } else if (strcmp(opt->key, "threads") == 0) {
         if (opt->type != ASSAY_OPTION_NUMBER || !(opt->number >= 1 && opt->number <= 64) ||
             opt->number != floor(opt->number)) {
            sm_fail(self, NULL, "option \"threads\" must be a whole number from 1 to 64 "
                                "(OpenBLAS threads per call; default 1)");
            return ASSAY_ERR_INVALID_ARGUMENT;
         }
         self->threads = (int)opt->number;
      }
   }
   int n;
   if (weights != NULL)
      n = snprintf(self->weights_path, sizeof self->weights_path, "%s", weights);
   else if (sm_library_dir[0] != 0)
      n = snprintf(self->weights_path, sizeof self->weights_path, "%s/%s", sm_library_dir, file);
   else
      n = snprintf(self->weights_path, sizeof self->weights_path, "%s", file);
   if (n < 0 || (size_t)n >= sizeof self->weights_path) {
      sm_fail(self, NULL, "the weights path is longer than %d bytes", SM_MAX_PATH - 1);
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   char err[1024];
   self->engine = shapes_engine_load(self->weights_path, err, sizeof err);
   if (self->engine == NULL) {
      sm_fail(self, NULL,
              "cannot use the weights: %s. Put a valid %s beside shapes.so or set the "
              "instance option weights = \"/path/to/%s\"",
              err, file, file);
      return ASSAY_ERR_IO;
   }
   const char *teacher = shapes_engine_meta(self->engine, "teacher_sha256");
   const bool is_corrector = shapes_engine_config(self->engine)->is_corrector != 0;
   if (is_corrector && !self->variant->corrector) {
      sm_fail(self, NULL,
              "%s is a corrector export (format assay-shapes-corrector-v1: it also needs a flawed "
              "image and a reflection); it belongs to the plugin id \"shapes-corrector\", this id "
              "takes %s",
              self->weights_path, self->variant->student ? "a distilled student" : "base model weights");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   if (self->variant->corrector && !is_corrector) {
      sm_fail(self, NULL,
              "%s is not a corrector export (its format is not assay-shapes-corrector-v1); base "
              "weights belong to the \"shapes\" model, correctors come from tools/corrector/train.py",
              self->weights_path);
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   if (self->variant->student && teacher == NULL) {
      sm_fail(self, NULL,
              "%s is not a distilled student (its metadata names no teacher_sha256); base "
              "weights belong to the \"shapes\" model, students come from tools/shapes/distill.py",
              self->weights_path);
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   self->cfg = shapes_engine_config(self->engine);
   /* Pixel space, so the shape is the whole meaning: [-1, 1] RGB, CHW. */
   snprintf(self->latent_id, sizeof self->latent_id, "io.assay.shapes/rgb-%dx%dx%d/1", self->cfg->in_channels,
            self->cfg->image_size, self->cfg->image_size);
   shapes_engine_set_threads(self->threads);
   if (self->host != NULL && self->host->log != NULL) {
      char line[SM_MAX_PATH + 400];
      char origin[128];
      if (teacher != NULL) {
         const char *distilled = shapes_engine_meta(self->engine, "distill_steps");
         snprintf(origin, sizeof origin, "distilled for %s steps from teacher %.12s", distilled ? distilled : "?", teacher);
      } else if (is_corrector) {
         snprintf(origin, sizeof origin, "corrector tuned from base %.12s, training step %lld",
                  shapes_engine_meta(self->engine, "base_sha256"), self->cfg->train_steps);
      } else {
         snprintf(origin, sizeof origin, "training step %lld", self->cfg->train_steps);
      }
      snprintf(line, sizeof line, "%s: loaded %s (%d middle blocks, %s; %d steps, guidance %g; %d BLAS thread%s)", id,
               self->weights_path, self->cfg->mid_layers, origin, self->cfg->default_steps,
               (double)self->cfg->default_guidance, self->threads, self->threads == 1 ? "" : "s");
      self->host->log(self->host, NULL, ASSAY_LOG_INFO, line);
   }
   return ASSAY_OK;
}

static void sm_destroy(const assay_plugin_t *plugin) {
   sm_instance_t *self = (sm_instance_t *)plugin->plugin_data;
   shapes_engine_free(self->engine);
   free(self);
}

/* ---- assay.model/1 ------------------------------------------------------------------- */

static void sm_get_info(const assay_plugin_t *plugin, assay_model_info_t *info) {
   const shapes_config_t *c = sm_self(plugin)->cfg;
   info->latent_channels = (uint32_t)c->in_channels;
   info->latent_height = (uint32_t)c->image_size;
   info->latent_width = (uint32_t)c->image_size;
   info->image_width = (uint32_t)c->image_size;
   info->image_height = (uint32_t)c->image_size;
   info->condition_size = (uint32_t)c->condition_size;
   info->max_batch = 0; /* the engine splits big batches itself */
   info->default_steps = (uint32_t)c->default_steps;
   info->default_guidance = c->default_guidance;
   info->schedule_shift = c->schedule_shift;
}

static assay_result_t sm_encode(const assay_plugin_t *plugin, const assay_call_t *call, const char *text,
                                float *condition) {
   const sm_instance_t *self = sm_self(plugin);
   if (text == NULL || condition == NULL) {
      sm_fail(self, call, "encode got a NULL text or condition buffer (host bug)");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   char err[1024];
   int rc = shapes_encode(self->engine, text, condition, err, sizeof err);
   if (rc != SHAPES_OK) {
      sm_fail(self, call, "%s. Prompts use this grammar: \"a red circle\", \"three green "
                          "triangles\", \"a blue square left of a yellow circle\" (at most %d words)",
              err, self->cfg->max_tokens);
      return sm_engine_code(rc);
   }
   return ASSAY_OK;
}

static assay_result_t sm_check_t(const sm_instance_t *self, const assay_call_t *call, uint32_t n, const float *t) {
   for (uint32_t i = 0; i < n; i++)
      if (!(t[i] >= 0.0f && t[i] <= 1.0f)) {
         sm_fail(self, call, "t[%u] = %g is outside [0, 1]", i, (double)t[i]);
         return ASSAY_ERR_INVALID_ARGUMENT;
      }
   return ASSAY_OK;
}

static assay_result_t sm_velocity(const assay_plugin_t *plugin, const assay_call_t *call, uint32_t n,
                                  const float *x, const float *t, const float *conditions, float *v) {
   const sm_instance_t *self = sm_self(plugin);
   if (n > 0 && (x == NULL || t == NULL || conditions == NULL || v == NULL)) {
      sm_fail(self, call, "velocity got a NULL buffer (host bug)");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   assay_result_t r = sm_check_t(self, call, n, t);
   if (r != ASSAY_OK)
      return r;
   if (n > 0 && call != NULL && self->host->is_cancelled != NULL && self->host->is_cancelled(self->host, call))
      return ASSAY_ERR_CANCELLED;
   char err[512];
   int rc = shapes_velocity(self->engine, n, x, t, conditions, v, err, sizeof err);
   if (rc != SHAPES_OK) {
      sm_fail(self, call, "velocity: %s", err);
      return sm_engine_code(rc);
   }
   return ASSAY_OK;
}

/* round((clamp(x, -1, 1) + 1) * 127.5), ties to even like torch.round; NaN -> 0. */
static assay_result_t sm_decode(const assay_plugin_t *plugin, const assay_call_t *call, uint32_t n,
                                const float *x, uint8_t *rgb) {
   const sm_instance_t *self = sm_self(plugin);
   if (n > 0 && (x == NULL || rgb == NULL)) {
      sm_fail(self, call, "decode got a NULL buffer (host bug)");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   const uint32_t C = (uint32_t)self->cfg->in_channels, S = (uint32_t)self->cfg->image_size, plane = S * S;
   for (uint32_t i = 0; i < n; i++) {
      const float *xi = x + (size_t)i * C * plane;
      uint8_t *out = rgb + (size_t)i * plane * 3;
      for (uint32_t p = 0; p < plane; p++)
         for (uint32_t c = 0; c < 3; c++) {
            float value = c < C ? xi[(size_t)c * plane + p] : -1.0f;
            if (!(value >= -1.0f)) value = -1.0f; /* also NaN */
            if (value > 1.0f) value = 1.0f;
            out[(size_t)p * 3 + c] = (uint8_t)rintf((value + 1.0f) * 127.5f);
         }
   }
   return ASSAY_OK;
}

static const assay_model_ext_t sm_model_ext = {
   .get_info = sm_get_info,
   .encode = sm_encode,
   .velocity = sm_velocity,
   .decode = sm_decode,
};

/* ---- assay.model-blocks/1 ------------------------------------------------------------ */

static void sm_blocks_info(const assay_plugin_t *plugin, assay_model_blocks_info_t *info) {
   const sm_instance_t *self = sm_self(plugin);
   const shapes_config_t *c = self->cfg;
   shapes_cost_t cost;
   shapes_engine_cost(self->engine, &cost);
   memset(info, 0, sizeof *info);
   info->block_count = (uint32_t)c->mid_layers;
   info->hidden_size = (uint32_t)c->hidden_size;
   info->context_size = (uint32_t)c->context_size;
   info->tokens = (uint32_t)c->n_seq;
   info->width = (uint32_t)c->width;
   info->prologue_flops = 2.0 * cost.prologue; /* multiply-adds -> FLOPs */
   info->block_flops = 2.0 * cost.block;
   info->epilogue_flops = 2.0 * cost.epilogue;
}

static assay_result_t sm_prologue(const assay_plugin_t *plugin, const assay_call_t *call, uint32_t n,
                                  const float *x, const float *t, const float *conditions, float *hidden,
                                  float *context) {
   const sm_instance_t *self = sm_self(plugin);
   if (n > 0 && (x == NULL || t == NULL || conditions == NULL || hidden == NULL || context == NULL)) {
      sm_fail(self, call, "prologue got a NULL buffer (host bug)");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   assay_result_t r = sm_check_t(self, call, n, t);
   if (r != ASSAY_OK)
      return r;
   char err[512];
   int rc = shapes_prologue(self->engine, n, x, t, conditions, hidden, context, err, sizeof err);
   if (rc != SHAPES_OK) {
      sm_fail(self, call, "prologue: %s", err);
      return sm_engine_code(rc);
   }
   return ASSAY_OK;
}

static assay_result_t sm_block(const assay_plugin_t *plugin, const assay_call_t *call, uint32_t index,
                               uint32_t n, float *hidden, const float *context) {
   const sm_instance_t *self = sm_self(plugin);
   char err[512];
   int rc = shapes_block(self->engine, index, n, hidden, context, err, sizeof err);
   if (rc != SHAPES_OK) {
      sm_fail(self, call, "block: %s", err);
      return sm_engine_code(rc);
   }
   return ASSAY_OK;
}

static assay_result_t sm_epilogue(const assay_plugin_t *plugin, const assay_call_t *call, uint32_t n,
                                  const float *hidden, const float *context, float *v) {
   const sm_instance_t *self = sm_self(plugin);
   char err[512];
   int rc = shapes_epilogue(self->engine, n, hidden, context, v, NULL, err, sizeof err);
   if (rc != SHAPES_OK) {
      sm_fail(self, call, "epilogue: %s", err);
      return sm_engine_code(rc);
   }
   return ASSAY_OK;
}

static const assay_model_blocks_ext_t sm_blocks_ext = {
   .get_info = sm_blocks_info,
   .prologue = sm_prologue,
   .block = sm_block,
   .epilogue = sm_epilogue,
};

/* ---- assay.latent-space.draft/1 ---------------------------------------------------- */

static const char *sm_latent_space_id(const assay_plugin_t *plugin) {
   return sm_self(plugin)->latent_id;
}

static const assay_latent_space_ext_t sm_latent_space_ext = {
   .id = sm_latent_space_id,
};

/* ---- assay.model-reference.draft/1 (shapes-corrector) ---------------------------------- */

static void sm_reference_info(const assay_plugin_t *plugin, assay_model_reference_info_t *info) {
   const shapes_config_t *c = sm_self(plugin)->cfg;
   info->image_width = (uint32_t)c->image_size;
   info->image_height = (uint32_t)c->image_size;
   info->max_instruction_words = (uint32_t)c->ref_tokens;
}

static assay_result_t sm_encode_reference(const assay_plugin_t *plugin, const assay_call_t *call, const char *text,
                                          const char *instruction, const assay_image_t *image, float *condition) {
   const sm_instance_t *self = sm_self(plugin);
   if (text == NULL || instruction == NULL || image == NULL || image->pixels == NULL || condition == NULL) {
      sm_fail(self, call, "encode_reference got a NULL text, instruction, image, pixel buffer or condition "
                          "buffer (host bug)");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   const uint32_t S = (uint32_t)self->cfg->image_size;
   if (image->width != S || image->height != S) {
      sm_fail(self, call, "encode_reference: the reference image is %ux%u; this model takes exactly %ux%u "
                          "(get_info)", image->width, image->height, S, S);
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   if (image->stride < 3 * S) {
      sm_fail(self, call, "encode_reference: image stride %u is less than width x 3 = %u bytes", image->stride, 3 * S);
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   char err[1024];
   int rc = shapes_encode_reference(self->engine, text, instruction, image->pixels, image->stride, condition, err,
                                    sizeof err);
   if (rc != SHAPES_OK) {
      sm_fail(self, call, "%s. Prompts use this grammar: \"a red circle\", \"three green triangles\", "
                          "\"a blue square left of a yellow circle\" (at most %d words)",
              err, self->cfg->max_tokens);
      return sm_engine_code(rc);
   }
   return ASSAY_OK;
}

static const assay_model_reference_ext_t sm_reference_ext = {
   .get_info = sm_reference_info,
   .encode_reference = sm_encode_reference,
};

static const void *sm_get_extension(const assay_plugin_t *plugin, const char *id) {
   if (id == NULL)
      return NULL;
   if (strcmp(id, ASSAY_EXT_MODEL_REFERENCE_DRAFT) == 0)
      return sm_self(plugin)->variant->corrector ? &sm_reference_ext : NULL;
   if (strcmp(id, ASSAY_EXT_MODEL) == 0)
      return &sm_model_ext;
   if (strcmp(id, ASSAY_EXT_MODEL_BLOCKS) == 0)
      return &sm_blocks_ext;
   if (strcmp(id, ASSAY_EXT_LATENT_SPACE_DRAFT) == 0)
      return &sm_latent_space_ext;
   return NULL;
}

/* ---- descriptor, factory, entry ---------------------------------------------------------- */

static uint32_t sm_get_plugin_count(const assay_plugin_factory_t *factory) {
   (void)factory;
   return (uint32_t)SM_VARIANT_COUNT;
}

static const assay_plugin_descriptor_t *sm_get_plugin_descriptor(const assay_plugin_factory_t *factory,
                                                                 uint32_t index) {
   (void)factory;
   return index < SM_VARIANT_COUNT ? &sm_variants[index].descriptor : NULL;
}

static const assay_plugin_t *sm_create_plugin(const assay_plugin_factory_t *factory, const assay_host_t *host,
                                              const char *plugin_id) {
   (void)factory;
   const sm_variant_t *variant = NULL;
   for (size_t i = 0; plugin_id != NULL && i < SM_VARIANT_COUNT; i++)
      if (strcmp(plugin_id, sm_variants[i].descriptor.id) == 0)
         variant = &sm_variants[i];
   if (variant == NULL)
      return NULL;
   sm_instance_t *self = calloc(1, sizeof *self);
   if (self == NULL)
      return NULL;
   self->variant = variant;
   self->host = host;
   self->plugin.desc = &variant->descriptor;
   self->plugin.plugin_data = self;
   self->plugin.init = sm_init;
   self->plugin.destroy = sm_destroy;
   self->plugin.get_extension = sm_get_extension;
   return &self->plugin;
}

static const assay_plugin_factory_t sm_factory = {
   .get_plugin_count = sm_get_plugin_count,
   .get_plugin_descriptor = sm_get_plugin_descriptor,
   .create_plugin = sm_create_plugin,
};

/* Remembers the directory of the installed library (where the weights live). */
static bool sm_entry_init(const char *library_path) {
   sm_library_dir[0] = 0;
   if (library_path == NULL)
      return true;
   const char *slash = strrchr(library_path, '/');
   if (slash == NULL) {
      snprintf(sm_library_dir, sizeof sm_library_dir, ".");
      return true;
   }
   size_t len = (size_t)(slash - library_path);
   if (len == 0)
      len = 1; /* "/shapes.so" -> "/" */
   if (len >= sizeof sm_library_dir)
      return true; /* too long: init will then need the "weights" option */
   memcpy(sm_library_dir, library_path, len);
   sm_library_dir[len] = 0;
   return true;
}

static void sm_entry_deinit(void) {}

static const void *sm_get_factory(const char *factory_id) {
   if (factory_id != NULL && strcmp(factory_id, ASSAY_PLUGIN_FACTORY_ID) == 0)
      return &sm_factory;
   return NULL;
}

ASSAY_EXPORT const assay_plugin_entry_t assay_entry = {
   .abi_version = ASSAY_VERSION_INIT,
   .init = sm_entry_init,
   .deinit = sm_entry_deinit,
   .get_factory = sm_get_factory,
};
