/* shapes-clipscore.c: a LEARNED image-text alignment verifier for the shapes world, the
 * CLIPScore analogue (id "shapes-clipscore").
 *
 * A small CLIP-style model (tools/clipscore/train.py: CNN image encoder, position-aware
 * bag-of-token-embeddings text encoder, contrastive training on world.py scenes with hard
 * negatives) embeds the image and the prompt; the score is their cosine similarity mapped to
 * [0, 1]:
 *     score = (cosine + 1) / 2
 * (not CLIPScore's max(cosine, 0) * w: the affine map keeps the ranking of negative cosines,
 * which best-of-N needs, and the rank is all the host compares). It is imperfect on purpose,
 * like CLIP: it can prefer a wrong image (verifier bias) and can be gamed (verifier hacking);
 * tools/clipscore/README.md has its measured agreement with the exact checker.
 * Details per image (JSON): {"cosine":0.4213}.
 *
 * Weights: clipscore.safetensors beside the installed library (the path the entry's init
 * receives), or the instance option `weights` (a path). A missing, truncated or corrupt file is
 * refused in init with the reason (ASSAY_ERR_IO).
 * Prompt: tokenized like tools/shapes/world.py `encode` with the vocabulary stored in the
 * weights (lower-case, split on whitespace, at most 8 words); an unknown word or more than 8
 * words is ASSAY_ERR_INVALID_ARGUMENT with the reason. The prompt is not parsed with the
 * grammar: like CLIP, any sequence of known words gets a score.
 * Images: 32x32 RGB (the shapes world); other sizes are ASSAY_ERR_INVALID_ARGUMENT.
 *
 * Threads: the model is read-only after init; each call allocates its own scratch memory, so
 * concurrent calls on one instance are safe. Deterministic: the same inputs give bit-identical
 * scores. */
#include <assay/assay.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clipscore/clipscore.h"

#define CS_WEIGHTS_FILE "clipscore.safetensors"
#define CS_MAX_PATH 4096
#define CS_MAX_EMBED 4096

/* Directory of the installed library (where the weights live), set once by the entry's init
 * on the main thread before any instance exists; read-only afterwards. */
static char cs_library_dir[CS_MAX_PATH];

typedef struct csp_instance {
   assay_plugin_t plugin;
   const assay_host_t *host;
   cs_model *model;
} csp_instance_t;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void csp_fail(const csp_instance_t *self, const assay_call_t *call, const char *fmt, ...) {
   char message[1024];
   va_list args;
   va_start(args, fmt);
   vsnprintf(message, sizeof message, fmt, args);
   va_end(args);
   if (self->host != NULL && self->host->report_error != NULL)
      self->host->report_error(self->host, call, message);
}

static assay_result_t csp_init(const assay_plugin_t *plugin, const assay_options_t *options) {
   csp_instance_t *self = (csp_instance_t *)plugin->plugin_data;
   const char *weights = NULL;
   for (uint32_t i = 0; options != NULL && i < options->count; i++) {
      const assay_option_t *opt = &options->items[i];
      if (opt->key == NULL || strcmp(opt->key, "weights") != 0)
         continue; /* unknown keys are ignored */
      if (opt->type != ASSAY_OPTION_STRING || opt->string == NULL || opt->string[0] == '\0') {
         csp_fail(self, NULL, "shapes-clipscore: option \"weights\" must be a non-empty string: "
                              "the path of a clipscore.safetensors file");
         return ASSAY_ERR_INVALID_ARGUMENT;
      }
      weights = opt->string;
   }
   char path[CS_MAX_PATH];
   int n;
   if (weights != NULL)
      n = snprintf(path, sizeof path, "%s", weights);
   else if (cs_library_dir[0] != '\0')
      n = snprintf(path, sizeof path, "%s/%s", cs_library_dir, CS_WEIGHTS_FILE);
   else
      n = snprintf(path, sizeof path, "%s", CS_WEIGHTS_FILE);
   if (n < 0 || (size_t)n >= sizeof path) {
      csp_fail(self, NULL, "shapes-clipscore: the weights path is longer than %d bytes",
               CS_MAX_PATH - 1);
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   char err[768];
   self->model = cs_model_load(path, err, sizeof err);
   if (self->model == NULL) {
      csp_fail(self, NULL, "shapes-clipscore: cannot use the weights: %s. Put a valid %s beside "
                           "shapes-clipscore.so or set the instance option weights = "
                           "\"/path/to/clipscore.safetensors\"", err, CS_WEIGHTS_FILE);
      return ASSAY_ERR_IO;
   }
   if (cs_embed_dim(self->model) < 1 || cs_embed_dim(self->model) > CS_MAX_EMBED) {
      csp_fail(self, NULL, "shapes-clipscore: %s: embedding size %d is out of range 1..%d", path,
               cs_embed_dim(self->model), CS_MAX_EMBED);
      cs_model_free(self->model);
      self->model = NULL;
      return ASSAY_ERR_IO;
   }
   if (self->host != NULL && self->host->log != NULL) {
      char line[CS_MAX_PATH + 160];
      const char *steps = cs_meta(self->model, "steps");
      snprintf(line, sizeof line, "shapes-clipscore: loaded %s (embedding %d, vocabulary %d, "
               "%s training steps)", path, cs_embed_dim(self->model), cs_vocab_size(self->model),
               steps ? steps : "?");
      self->host->log(self->host, NULL, ASSAY_LOG_INFO, line);
   }
   return ASSAY_OK;
}

static void csp_destroy(const assay_plugin_t *plugin) {
   csp_instance_t *self = (csp_instance_t *)plugin->plugin_data;
   cs_model_free(self->model);
   free(self);
}

/* The prompt for a message: at most 120 bytes, control bytes as '?'. */
static void csp_show_prompt(const char *prompt, char out[128]) {
   size_t n = 0;
   for (; prompt[n] != '\0' && n < 120; n++)
      out[n] = (unsigned char)prompt[n] < 0x20 ? '?' : prompt[n];
   if (prompt[n] != '\0') {
      memcpy(out + n, "...", 3);
      n += 3;
   }
   out[n] = '\0';
}

static assay_result_t csp_score(const assay_plugin_t *plugin, const assay_call_t *call,
                                const char *prompt, uint32_t n, const assay_image_t *images,
                                double *scores, const assay_text_out_t *details) {
   const csp_instance_t *self = (const csp_instance_t *)plugin->plugin_data;
   if (self->model == NULL) {
      csp_fail(self, call, "shapes-clipscore: score called on an instance whose init failed "
                           "(host bug)");
      return ASSAY_ERR_INTERNAL;
   }
   if (prompt == NULL || (n > 0 && (images == NULL || scores == NULL))) {
      csp_fail(self, call, "shapes-clipscore: score got a NULL prompt, image array or score "
                           "array (host bug)");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   int32_t tokens[CS_MAX_TOKENS];
   char err[1200];
   if (cs_tokenize(self->model, prompt, tokens, err, sizeof err) != 0) {
      char shown[128];
      csp_show_prompt(prompt, shown);
      csp_fail(self, call, "shapes-clipscore: cannot tokenize the prompt \"%s\": %s", shown, err);
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   for (uint32_t i = 0; i < n; i++) {
      const assay_image_t *im = &images[i];
      if (im->width != CS_IMAGE_SIZE || im->height != CS_IMAGE_SIZE || im->pixels == NULL ||
          im->stride < (uint32_t)CS_IMAGE_SIZE * 3) {
         csp_fail(self, call, "shapes-clipscore: image %u is %ux%u (stride %u%s); this verifier "
                              "scores %dx%d RGB images of the shapes world", i, im->width,
                  im->height, im->stride, im->pixels == NULL ? ", no pixels" : "", CS_IMAGE_SIZE,
                  CS_IMAGE_SIZE);
         return ASSAY_ERR_INVALID_ARGUMENT;
      }
   }
   const int e = cs_embed_dim(self->model);
   float *buf = malloc((size_t)2 * (size_t)e * sizeof *buf);
   if (buf == NULL) {
      csp_fail(self, call, "shapes-clipscore: out of memory");
      return ASSAY_ERR_NO_MEMORY;
   }
   float *text = buf, *img = buf + e;
   if (cs_embed_text(self->model, tokens, text) != 0) {
      free(buf);
      csp_fail(self, call, "shapes-clipscore: out of memory embedding the prompt");
      return ASSAY_ERR_NO_MEMORY;
   }
   for (uint32_t i = 0; i < n; i++) {
      if (self->host != NULL && self->host->is_cancelled != NULL &&
          self->host->is_cancelled(self->host, call)) {
         free(buf);
         csp_fail(self, call, "shapes-clipscore: cancelled");
         return ASSAY_ERR_CANCELLED;
      }
      if (cs_embed_image(self->model, images[i].pixels, images[i].stride, img) != 0) {
         free(buf);
         csp_fail(self, call, "shapes-clipscore: out of memory embedding image %u", i);
         return ASSAY_ERR_NO_MEMORY;
      }
      float c = cs_cosine(self->model, img, text);
      if (c > 1.0f)
         c = 1.0f;
      if (c < -1.0f)
         c = -1.0f;
      scores[i] = ((double)c + 1.0) / 2.0;
      if (details != NULL && details->set != NULL) {
         char json[64];
         snprintf(json, sizeof json, "{\"cosine\":%.6f}", (double)c);
         details->set(details, i, json);
      }
   }
   free(buf);
   return ASSAY_OK;
}

static const assay_verifier_ext_t csp_verifier_ext = {
   .score = csp_score,
};

static const void *csp_get_extension(const assay_plugin_t *plugin, const char *id) {
   (void)plugin;
   if (id != NULL && strcmp(id, ASSAY_EXT_VERIFIER) == 0)
      return &csp_verifier_ext;
   return NULL;
}

/* ---- Descriptor, factory, entry ------------------------------------------------------ */

static const assay_plugin_descriptor_t csp_descriptor = {
   .abi_version = ASSAY_VERSION_INIT,
   .id = "shapes-clipscore",
   .name = "Shapes CLIPScore (learned)",
   .version = "1.0.0",
   .description = "Learned image-text alignment of a shapes-world image with its caption: "
                  "(cosine + 1) / 2 of a small contrastive model's embeddings (CLIPScore "
                  "analogue; imperfect on purpose).",
   .kind = ASSAY_KIND_VERIFIER,
};

static uint32_t csp_get_plugin_count(const assay_plugin_factory_t *factory) {
   (void)factory;
   return 1;
}

static const assay_plugin_descriptor_t *csp_get_plugin_descriptor(
   const assay_plugin_factory_t *factory, uint32_t index) {
   (void)factory;
   return index == 0 ? &csp_descriptor : NULL;
}

static const assay_plugin_t *csp_create_plugin(const assay_plugin_factory_t *factory,
                                               const assay_host_t *host,
                                               const char *plugin_id) {
   (void)factory;
   if (plugin_id == NULL || strcmp(plugin_id, csp_descriptor.id) != 0)
      return NULL;
   csp_instance_t *self = calloc(1, sizeof *self);
   if (self == NULL)
      return NULL;
   self->host = host;
   self->plugin.desc = &csp_descriptor;
   self->plugin.plugin_data = self;
   self->plugin.init = csp_init;
   self->plugin.destroy = csp_destroy;
   self->plugin.get_extension = csp_get_extension;
   return &self->plugin;
}

static const assay_plugin_factory_t csp_factory = {
   .get_plugin_count = csp_get_plugin_count,
   .get_plugin_descriptor = csp_get_plugin_descriptor,
   .create_plugin = csp_create_plugin,
};

/* Remembers the directory of the installed library (where the weights live). */
static bool csp_entry_init(const char *library_path) {
   cs_library_dir[0] = '\0';
   if (library_path == NULL)
      return true;
   const char *slash = strrchr(library_path, '/');
   if (slash == NULL)
      return true; /* bare file name: the weights are looked up in the current directory */
   size_t len = (size_t)(slash - library_path);
   if (len == 0)
      len = 1; /* the library is in "/" */
   if (len >= sizeof cs_library_dir)
      return true; /* too long: init will then need the "weights" option */
   memcpy(cs_library_dir, library_path, len);
   cs_library_dir[len] = '\0';
   return true;
}

static void csp_entry_deinit(void) {}

static const void *csp_get_factory(const char *factory_id) {
   if (factory_id != NULL && strcmp(factory_id, ASSAY_PLUGIN_FACTORY_ID) == 0)
      return &csp_factory;
   return NULL;
}

ASSAY_EXPORT const assay_plugin_entry_t assay_entry = {
   .abi_version = ASSAY_VERSION_INIT,
   .init = csp_entry_init,
   .deinit = csp_entry_deinit,
   .get_factory = csp_get_factory,
};
