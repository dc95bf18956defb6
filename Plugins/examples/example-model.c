/* example-model.c: an analytic flow-matching model, no weights needed.
 *
 * Copy this file to start a model plugin. It shows:
 *   - the one exported symbol (`assay_entry`), the factory and the descriptor;
 *   - an instance with its own data, created by the factory and set up in `init`
 *     (including how to read and check an instance option);
 *   - the three model functions (encode, velocity, decode) with argument checking and
 *     error reports that tell the user what to fix.
 *
 * The "model" is exact rather than learned. Its data distribution is a mixture of K = 16
 * images ("modes"), each a filled disk on a black background:
 *   - latent = image space: 3 channels x 16 x 16, values in [-1, 1], CHW order;
 *   - 4 colours (RGB in 0..255):  red (255, 0, 0)   green (0, 255, 0)
 *                                 blue (0, 0, 255)  yellow (255, 255, 0)
 *     background black (0, 0, 0), i.e. -1 in every latent channel;
 *   - 4 positions, the centres of the four 8x8 quadrants: (3.5, 3.5) top left,
 *     (11.5, 3.5) top right, (3.5, 11.5) bottom left, (11.5, 11.5) bottom right, in pixel
 *     coordinates where pixel (x, y) covers [x, x+1) x [y, y+1) (its centre is x+0.5);
 *   - disk radius 3.5 px with a 1-px soft edge: coverage = clamp(3.5 + 0.5 - d, 0, 1),
 *     d = distance from the pixel centre to the disk centre; value = -1 + coverage*(c+1).
 *   Mode k = colour * 4 + position, colour in {red, green, blue, yellow}, position in
 *   {top left, top right, bottom left, bottom right}.
 *
 * The condition is the vector of K mixture weights (condition_size = 16), see encode.
 * Because the data are 16 points, the velocity is known in closed form (see velocity),
 * so sampling with any reasonable sampler converges to one of the 16 disk images.
 *
 * Threads: encode, velocity and decode run on many job threads at once for the same
 * instance. They only READ the instance (mode images, mode_weight), which is written once
 * in init on the main thread before any job call, so no lock is needed. All scratch memory
 * is on the stack of the call. There is no global mutable state in this file. */

#include <assay/assay.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Model geometry ---------------------------------------------------------------- */

#define EM_CHANNELS 3u
#define EM_SIDE 16u
#define EM_PLANE (EM_SIDE * EM_SIDE)
#define EM_SAMPLE (EM_CHANNELS * EM_PLANE) /* floats in one latent sample */
#define EM_COLOURS 4u
#define EM_POSITIONS 4u
#define EM_MODES (EM_COLOURS * EM_POSITIONS) /* K = condition_size */
#define EM_MAX_PROMPT 256u                   /* longest prompt encode accepts, in bytes */
#define EM_RADIUS 3.5
#define EM_T_MIN 1e-4 /* velocity clamps t to at least this (v = (x - E[x0]) / t) */

/* Palette in latent units ([-1, 1]): 255 -> 1, 0 -> -1. */
static const float em_palette[EM_COLOURS][EM_CHANNELS] = {
   {1.0f, -1.0f, -1.0f}, /* red    (255,   0,   0) */
   {-1.0f, 1.0f, -1.0f}, /* green  (  0, 255,   0) */
   {-1.0f, -1.0f, 1.0f}, /* blue   (  0,   0, 255) */
   {1.0f, 1.0f, -1.0f},  /* yellow (255, 255,   0) */
};
static const char *const em_colour_words[EM_COLOURS] = {"red", "green", "blue", "yellow"};

/* Disk centres; position p: column = p % 2 (0 left, 1 right), row = p / 2 (0 top). */
static const double em_centre[2] = {3.5, 11.5};

/* ---- The instance ------------------------------------------------------------------ */

/* Everything one instance owns. `plugin` is what the host sees; its plugin_data points
 * back to this struct. Written in create/init (main thread), read-only afterwards. */
typedef struct em_instance {
   assay_plugin_t plugin;
   const assay_host_t *host; /* borrowed from create_plugin; outlives the instance */
   double mode_weight;       /* option "mode_weight": how strongly prompts are followed */
   float modes[EM_MODES][EM_SAMPLE];
} em_instance_t;

static const em_instance_t *em_self(const assay_plugin_t *plugin) {
   return (const em_instance_t *)plugin->plugin_data;
}

/* Formats a reason and hands it to the host. Call right before returning an error.
 * `call` may be NULL for init (which receives no call; see host.h). */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void em_fail(const em_instance_t *self, const assay_call_t *call, const char *fmt, ...) {
   char message[512];
   va_list args;
   va_start(args, fmt);
   vsnprintf(message, sizeof message, fmt, args);
   va_end(args);
   if (self->host != NULL && self->host->report_error != NULL)
      self->host->report_error(self->host, call, message);
}

/* Renders the 16 mode images into the instance. */
static void em_render_modes(em_instance_t *self) {
   for (uint32_t colour = 0; colour < EM_COLOURS; colour++) {
      for (uint32_t pos = 0; pos < EM_POSITIONS; pos++) {
         float *mode = self->modes[colour * EM_POSITIONS + pos];
         const double cx = em_centre[pos % 2], cy = em_centre[pos / 2];
         for (uint32_t y = 0; y < EM_SIDE; y++) {
            for (uint32_t x = 0; x < EM_SIDE; x++) {
               const double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
               double cover = EM_RADIUS + 0.5 - sqrt(dx * dx + dy * dy);
               cover = cover < 0.0 ? 0.0 : cover > 1.0 ? 1.0 : cover;
               for (uint32_t c = 0; c < EM_CHANNELS; c++)
                  mode[c * EM_PLANE + y * EM_SIDE + x] =
                     (float)(-1.0 + cover * (em_palette[colour][c] + 1.0));
            }
         }
      }
   }
}

/* ---- Instance lifecycle ------------------------------------------------------------ */

/* [main-thread] Reads the options and renders the modes. Unknown keys are ignored (the
 * ABI says so: newer configurations may carry keys this version does not know). */
static assay_result_t em_init(const assay_plugin_t *plugin, const assay_options_t *options) {
   em_instance_t *self = (em_instance_t *)plugin->plugin_data;
   self->mode_weight = 0.4;
   for (uint32_t i = 0; options != NULL && i < options->count; i++) {
      const assay_option_t *opt = &options->items[i];
      if (strcmp(opt->key, "mode_weight") != 0)
         continue;
      if (opt->type != ASSAY_OPTION_NUMBER) {
         em_fail(self, NULL,
                 "example-model: option \"mode_weight\" must be a number between 0 and 1 "
                 "(e.g. mode_weight = 0.4), not a string");
         return ASSAY_ERR_INVALID_ARGUMENT;
      }
      if (!(opt->number >= 0.0 && opt->number <= 1.0)) { /* also catches NaN */
         em_fail(self, NULL,
                 "example-model: option \"mode_weight\" is %g; use a number between 0 "
                 "(ignore prompts) and 1 (always follow them)",
                 opt->number);
         return ASSAY_ERR_INVALID_ARGUMENT;
      }
      self->mode_weight = opt->number;
   }
   em_render_modes(self);
   return ASSAY_OK;
}

/* [main-thread] Frees the instance. The assay_plugin_t lives inside it. */
static void em_destroy(const assay_plugin_t *plugin) {
   free(plugin->plugin_data);
}

/* ---- The model interface ----------------------------------------------------------- */

/* [any-thread] Constant shape and defaults. */
static void em_get_info(const assay_plugin_t *plugin, assay_model_info_t *info) {
   (void)plugin;
   info->latent_channels = EM_CHANNELS;
   info->latent_height = EM_SIDE;
   info->latent_width = EM_SIDE;
   info->image_width = EM_SIDE;
   info->image_height = EM_SIDE;
   info->condition_size = EM_MODES;
   info->max_batch = 0;          /* any batch size: the maths is per sample */
   info->default_steps = 20;
   info->default_guidance = 1.0f; /* the model follows prompts without guidance */
   info->schedule_shift = 1.0f;
}

/* True if the lower-cased ASCII word `w` (length n) equals `literal`. */
static int em_word_is(const char *w, size_t n, const char *literal) {
   return strlen(literal) == n && memcmp(w, literal, n) == 0;
}

/* [job-thread] Turns a prompt into K mixture weights.
 *
 * Words (ASCII letters, case-insensitive) are looked up:
 *   colours   red, green, blue, yellow
 *   columns   left, right
 *   rows      top / above, bottom / below
 * A mode "matches" if its colour, column and row are each either mentioned or left
 * unconstrained (no word of that group in the prompt). Weights follow a simple story: with
 * probability mode_weight the model obeys the prompt (a matching mode, uniformly), otherwise
 * it draws any of the K modes uniformly:
 *   w_k = mode_weight * [k matches] / (number of matches) + (1 - mode_weight) / K.
 * So "a red disk top left" gives that mode 0.4375 and every other 0.0375 (default 0.4):
 * prompts are followed often but not always. "" (the unconditional prompt) and prompts with
 * no known word give uniform weights 1/K. (model.h allows refusing unknown words; this
 * model accepts them, because a 16-image model cannot represent most words anyway and
 * refusing them would make every real-world prompt fail.) */
static assay_result_t em_encode(const assay_plugin_t *plugin, const assay_call_t *call,
                                const char *text, float *condition) {
   const em_instance_t *self = em_self(plugin);
   if (text == NULL || condition == NULL) {
      em_fail(self, call, "example-model: encode needs a text and a condition buffer "
                          "(host bug: got NULL)");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   const size_t len = strlen(text);
   if (len > EM_MAX_PROMPT) {
      em_fail(self, call,
              "example-model: prompt is %zu bytes; this model reads at most %u. "
              "Shorten it, e.g. \"a red disk top left\"",
              len, EM_MAX_PROMPT);
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   /* A prompt of only blanks is almost certainly a mistake; "" is the unconditional one. */
   size_t blanks = strspn(text, " \t\r\n\f\v");
   if (len > 0 && blanks == len) {
      em_fail(self, call,
              "example-model: prompt contains only whitespace; write a prompt such as "
              "\"a blue disk bottom right\", or pass \"\" for an unconditional sample");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }

   /* Bit masks of what the prompt mentions: colour bit c, column bit (0 left, 1 right),
    * row bit (0 top, 1 bottom). 0 = not mentioned = anything goes. */
   unsigned colours = 0, columns = 0, rows = 0;
   for (size_t i = 0; i < len;) {
      char word[16];
      size_t n = 0;
      while (i < len && !((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= 'A' && text[i] <= 'Z')))
         i++;
      while (i < len && ((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= 'A' && text[i] <= 'Z'))) {
         if (n < sizeof word) /* longer words cannot be ours; they are cut and ignored */
            word[n] = (char)(text[i] | 0x20); /* ASCII lower case */
         n++;
         i++;
      }
      if (n == 0 || n > sizeof word)
         continue;
      for (unsigned c = 0; c < EM_COLOURS; c++)
         if (em_word_is(word, n, em_colour_words[c]))
            colours |= 1u << c;
      if (em_word_is(word, n, "left")) columns |= 1u;
      if (em_word_is(word, n, "right")) columns |= 2u;
      if (em_word_is(word, n, "top") || em_word_is(word, n, "above")) rows |= 1u;
      if (em_word_is(word, n, "bottom") || em_word_is(word, n, "below")) rows |= 2u;
   }

   int match[EM_MODES];
   unsigned matches = 0;
   for (unsigned k = 0; k < EM_MODES; k++) {
      const unsigned colour = k / EM_POSITIONS, pos = k % EM_POSITIONS;
      match[k] = (colours == 0 || (colours >> colour & 1u)) &&
                 (columns == 0 || (columns >> (pos % 2) & 1u)) &&
                 (rows == 0 || (rows >> (pos / 2) & 1u));
      matches += (unsigned)match[k];
   }
   /* matches >= 1 always: every group allows at least one value. */
   for (unsigned k = 0; k < EM_MODES; k++)
      condition[k] = (float)(self->mode_weight * match[k] / matches +
                             (1.0 - self->mode_weight) / EM_MODES);
   return ASSAY_OK;
}

/* [job-thread] Exact velocity of the mixture under the Assay flow convention.
 *
 * With x_t = (1 - t) x0 + t * noise and x0 one of the modes m_k (prior w_k):
 *   p(k | x_t) ∝ w_k N(x_t; (1 - t) m_k, t^2 I)          (computed with log-sum-exp)
 *   E[x0 | x_t] = sum_k p(k | x_t) m_k
 *   v = E[noise - x0 | x_t] = (x_t - E[x0 | x_t]) / t    (t clamped to >= 1e-4)
 * Guidance is the host's business (v_neg + g (v_pos - v_neg)); this function just answers
 * for whatever condition it is given. Everything is computed in a fixed order in double
 * precision, so the same inputs give the same bits. */
static assay_result_t em_velocity(const assay_plugin_t *plugin, const assay_call_t *call,
                                  uint32_t n, const float *x, const float *t,
                                  const float *conditions, float *v) {
   const em_instance_t *self = em_self(plugin);
   if (n > 0 && (x == NULL || t == NULL || conditions == NULL || v == NULL)) {
      em_fail(self, call, "example-model: velocity got a NULL buffer (host bug)");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   for (uint32_t i = 0; i < n; i++) {
      const float *xi = x + (size_t)i * EM_SAMPLE;
      const float *wi = conditions + (size_t)i * EM_MODES;
      float *vi = v + (size_t)i * EM_SAMPLE;

      if (!(t[i] >= 0.0f && t[i] <= 1.0f)) {
         em_fail(self, call, "example-model: t[%u] = %g is outside [0, 1]", i, (double)t[i]);
         return ASSAY_ERR_INVALID_ARGUMENT;
      }
      const double ti = t[i] < EM_T_MIN ? EM_T_MIN : (double)t[i];

      /* The condition must look like encode's output: finite weights >= 0, not all 0.
       * They are normalised here, so any positive scaling means the same thing. */
      double wsum = 0.0;
      for (uint32_t k = 0; k < EM_MODES; k++) {
         if (!(wi[k] >= 0.0f && isfinite(wi[k]))) {
            em_fail(self, call,
                    "example-model: condition %u, weight %u is %g; conditions must come "
                    "from this model's encode (finite weights >= 0)",
                    i, k, (double)wi[k]);
            return ASSAY_ERR_INVALID_ARGUMENT;
         }
         wsum += wi[k];
      }
      if (!(wsum > 0.0)) {
         em_fail(self, call, "example-model: condition %u has all weights 0; conditions "
                             "must come from this model's encode", i);
         return ASSAY_ERR_INVALID_ARGUMENT;
      }

      for (uint32_t j = 0; j < EM_SAMPLE; j++) {
         if (!isfinite(xi[j])) {
            em_fail(self, call, "example-model: latent %u has a non-finite value at index "
                                "%u; the sampler diverged (step too large?)", i, j);
            return ASSAY_ERR_INVALID_ARGUMENT;
         }
      }

      /* log p(k | x_t) up to a constant: log w_k - |x_t - (1-t) m_k|^2 / (2 t^2). */
      double logp[EM_MODES];
      double best = -INFINITY;
      const double scale = 1.0 - ti, inv_2var = 1.0 / (2.0 * ti * ti);
      for (uint32_t k = 0; k < EM_MODES; k++) {
         if (wi[k] == 0.0f) {
            logp[k] = -INFINITY;
            continue;
         }
         double d2 = 0.0;
         for (uint32_t j = 0; j < EM_SAMPLE; j++) {
            const double d = xi[j] - scale * self->modes[k][j];
            d2 += d * d;
         }
         logp[k] = log(wi[k] / wsum) - d2 * inv_2var;
         if (logp[k] > best)
            best = logp[k];
      }
      double post[EM_MODES], z = 0.0;
      for (uint32_t k = 0; k < EM_MODES; k++) {
         post[k] = logp[k] == -INFINITY ? 0.0 : exp(logp[k] - best);
         z += post[k];
      }
      for (uint32_t j = 0; j < EM_SAMPLE; j++) {
         double mean = 0.0;
         for (uint32_t k = 0; k < EM_MODES; k++)
            mean += post[k] * self->modes[k][j];
         mean /= z;
         vi[j] = (float)((xi[j] - mean) / ti);
      }
   }
   return ASSAY_OK;
}

/* [job-thread] Latent [-1, 1] -> 8-bit RGB: round((x + 1) / 2 * 255), clamped to 0..255
 * (NaN becomes 0). Decoding is exact for the mode images. */
static assay_result_t em_decode(const assay_plugin_t *plugin, const assay_call_t *call,
                                uint32_t n, const float *x, uint8_t *rgb) {
   const em_instance_t *self = em_self(plugin);
   if (n > 0 && (x == NULL || rgb == NULL)) {
      em_fail(self, call, "example-model: decode got a NULL buffer (host bug)");
      return ASSAY_ERR_INVALID_ARGUMENT;
   }
   for (uint32_t i = 0; i < n; i++) {
      const float *xi = x + (size_t)i * EM_SAMPLE;
      uint8_t *out = rgb + (size_t)i * EM_PLANE * 3;
      for (uint32_t p = 0; p < EM_PLANE; p++) {
         for (uint32_t c = 0; c < EM_CHANNELS; c++) {
            const double value = floor(((double)xi[c * EM_PLANE + p] + 1.0) * 0.5 * 255.0 + 0.5);
            out[p * 3 + c] = !(value > 0.0) ? 0 : value > 255.0 ? 255 : (uint8_t)value;
         }
      }
   }
   return ASSAY_OK;
}

static const assay_model_ext_t em_model_ext = {
   .get_info = em_get_info,
   .encode = em_encode,
   .velocity = em_velocity,
   .decode = em_decode,
};

/* [any-thread] The kind's interface is looked up by id like any other extension. */
static const void *em_get_extension(const assay_plugin_t *plugin, const char *id) {
   (void)plugin;
   if (id != NULL && strcmp(id, ASSAY_EXT_MODEL) == 0)
      return &em_model_ext;
   return NULL;
}

/* ---- Descriptor, factory, entry ---------------------------------------------------- */

static const assay_plugin_descriptor_t em_descriptor = {
   .abi_version = ASSAY_VERSION_INIT,
   .id = "example-model",
   .name = "Example analytic disk model",
   .version = "1.0.0",
   .description = "Exact flow model of 16 coloured-disk images (16x16); no weights.",
   .kind = ASSAY_KIND_MODEL,
};

static uint32_t em_get_plugin_count(const assay_plugin_factory_t *factory) {
   (void)factory;
   return 1;
}

static const assay_plugin_descriptor_t *em_get_plugin_descriptor(
   const assay_plugin_factory_t *factory, uint32_t index) {
   (void)factory;
   return index == 0 ? &em_descriptor : NULL;
}

/* [main-thread] Allocates an instance; the host calls its init next. Returns NULL for an
 * unknown id or when out of memory (there is no call to report a reason through). */
static const assay_plugin_t *em_create_plugin(const assay_plugin_factory_t *factory,
                                              const assay_host_t *host, const char *plugin_id) {
   (void)factory;
   if (plugin_id == NULL || strcmp(plugin_id, em_descriptor.id) != 0)
      return NULL;
   em_instance_t *self = calloc(1, sizeof *self);
   if (self == NULL)
      return NULL;
   self->host = host;
   self->plugin.desc = &em_descriptor;
   self->plugin.plugin_data = self;
   self->plugin.init = em_init;
   self->plugin.destroy = em_destroy;
   self->plugin.get_extension = em_get_extension;
   return &self->plugin;
}

static const assay_plugin_factory_t em_factory = {
   .get_plugin_count = em_get_plugin_count,
   .get_plugin_descriptor = em_get_plugin_descriptor,
   .create_plugin = em_create_plugin,
};

/* Nothing to set up per library: all state lives in instances. */
static bool em_entry_init(const char *library_path) {
   (void)library_path;
   return true;
}

static void em_entry_deinit(void) {}

static const void *em_get_factory(const char *factory_id) {
   if (factory_id != NULL && strcmp(factory_id, ASSAY_PLUGIN_FACTORY_ID) == 0)
      return &em_factory;
   return NULL;
}

/* The one exported symbol. */
ASSAY_EXPORT const assay_plugin_entry_t assay_entry = {
   .abi_version = ASSAY_VERSION_INIT,
   .init = em_entry_init,
   .deinit = em_entry_deinit,
   .get_factory = em_get_factory,
};
