/* engine.c: loading, validation and the forward pass of the shapes model (see engine.h and
 * tools/shapes/model.py). */
#define _POSIX_C_SOURCE 200809L
#include "engine.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "ops.h"
#include "safetensors.h"

#define SHAPES_CHUNK 16      /* most samples one workspace holds; bigger calls are split */
#define SHAPES_POOL_KEEP 8   /* idle workspaces kept for reuse */
#define GN_EPS 1e-5f
#define LN_EPS 1e-6f

typedef struct lin { const float *w, *b, *u; } lin_t; /* u: Winograd weights or NULL */
typedef struct nrm { const float *g, *b; } nrm_t;
typedef struct resblock { nrm_t norm1, norm2; lin_t conv1, conv2, film, skip; int cin, cout, has_skip; } resblock_t;
typedef struct textblock { nrm_t norm1, norm2; lin_t qkv, proj, fc1, fc2; } textblock_t;
typedef struct midblock { lin_t qkv, proj, fc1, fc2, ada; } midblock_t;

/* Scratch for up to `cap` samples; see ws_alloc for the sizes. */
typedef struct workspace {
   struct workspace *next;
   int cap;
   float *mem;
   float *z, *h16, *cat1, *h8, *cat2, *tA, *tB, *col, *temb, *c1, *film, *ada, *hidden, *context,
      *xln, *qkv, *o, *tmp, *mlp, *S, *tok, *stats;
} workspace_t;

struct shapes_engine {
   shapes_config_t cfg;
   int H1, S1, H2, S2, p2c;
   int p2c_in;   /* stem input channels: p2c, plus cond_channels * patch^2 for a corrector */
   float *arena;
   sj_value *meta;
   char **vocab;
   char **ref_vocab; /* corrector: the reflection vocabulary (ref_vocab_size words) */
   int ref_unk;      /* its "<unk>" id */
   const float *tok_emb, *pos_emb, *img_pos;
   const float *ref_tok_emb, *ref_pos_emb; /* corrector: the reflection's embeddings */
   textblock_t *text;
   midblock_t *mid;
   nrm_t text_norm, out_norm;
   lin_t text_pool, t_mlp0, t_mlp2, stem, down, up, out_conv, img_in, img_out;
   resblock_t enc0, enc1, dec1, dec0;
   pthread_mutex_t lock;
   workspace_t *pool;
   int pool_size;
   float *wino[16]; /* owned Winograd weight copies */
   int n_wino;
};

/* Winograd F(2x2,3x3) pays for convolutions that are not too thin. */
static int wino_eligible(int cin, int cout) { return cin >= 32 && cout >= 32; }

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void eerr(char *err, size_t errlen, const char *fmt, ...) {
   if (err == NULL || errlen == 0)
      return;
   va_list ap;
   va_start(ap, fmt);
   vsnprintf(err, errlen, fmt, ap);
   va_end(ap);
}

void shapes_engine_set_threads(int threads) {
   openblas_set_num_threads(threads < 1 ? 1 : threads);
}

/* ---- loading -------------------------------------------------------------------------- */

typedef struct loader {
   shapes_engine_t *e;
   st_file *f;
   unsigned char *used;
   float *next;
   char *err;
   size_t errlen;
   int failed;
} loader_t;

/* Finds tensor `name`, checks its shape (dims given, -1 terminated), converts it into the
 * arena. Returns NULL (and records the error) on any mismatch. */
static const float *need(loader_t *L, const char *name, int d0, int d1, int d2, int d3) {
   if (L->failed)
      return NULL;
   const int want[4] = {d0, d1, d2, d3};
   int nd = 0;
   while (nd < 4 && want[nd] >= 0)
      nd++;
   const st_tensor *t = st_find(L->f, name);
   char shape_txt[64];
   int pos = 0;
   for (int i = 0; i < nd; i++)
      pos += snprintf(shape_txt + pos, sizeof shape_txt - (size_t)pos, "%s%d", i ? ", " : "", want[i]);
   if (t == NULL) {
      eerr(L->err, L->errlen, "weights file lacks tensor \"%s\" [%s] that its config requires "
           "(corrupt file or a different model)", name, shape_txt);
      L->failed = 1;
      return NULL;
   }
   int ok = t->ndim == nd;
   for (int i = 0; ok && i < nd; i++)
      ok = t->shape[i] == (uint64_t)want[i];
   if (!ok) {
      char got[96];
      int gp = 0;
      for (int i = 0; i < t->ndim && gp < (int)sizeof got - 24; i++)
         gp += snprintf(got + gp, sizeof got - (size_t)gp, "%s%llu", i ? ", " : "", (unsigned long long)t->shape[i]);
      got[gp] = 0;
      eerr(L->err, L->errlen, "tensor \"%s\" has shape [%s]; the config requires [%s]", name, got, shape_txt);
      L->failed = 1;
      return NULL;
   }
   float *dst = L->next;
   st_to_f32(L->f, t, dst);
   for (uint64_t i = 0; i < t->numel; i++)
      if (!isfinite(dst[i])) {
         eerr(L->err, L->errlen, "tensor \"%s\" contains a non-finite value at index %llu "
              "(diverged training or corrupt file)", name, (unsigned long long)i);
         L->failed = 1;
         return NULL;
      }
   L->next += t->numel;
   L->used[t - L->f->tensors] = 1;
   return dst;
}

static lin_t need_lin(loader_t *L, const char *prefix, int out, int in) {
   char wn[256], bn[256];
   snprintf(wn, sizeof wn, "%s.weight", prefix);
   snprintf(bn, sizeof bn, "%s.bias", prefix);
   lin_t l;
   l.w = need(L, wn, out, in, -1, -1);
   l.b = need(L, bn, out, -1, -1, -1);
   l.u = NULL;
   return l;
}

static lin_t need_conv(loader_t *L, const char *prefix, int out, int in, int k, int wino) {
   char wn[256], bn[256];
   snprintf(wn, sizeof wn, "%s.weight", prefix);
   snprintf(bn, sizeof bn, "%s.bias", prefix);
   lin_t l;
   l.w = need(L, wn, out, in, k, k);
   l.b = need(L, bn, out, -1, -1, -1);
   l.u = NULL;
   if (l.w != NULL && k == 3 && wino && wino_eligible(in, out) &&
       L->e->n_wino < (int)(sizeof L->e->wino / sizeof L->e->wino[0])) {
      float *u = malloc((size_t)16 * out * in * sizeof *u);
      if (u == NULL) {
         eerr(L->err, L->errlen, "out of memory");
         L->failed = 1;
         return l;
      }
      op_winograd_weights(out, in, l.w, u); /* from the torch layout, before the permutation */
      L->e->wino[L->e->n_wino++] = u;
      l.u = u;
   }
   if (l.w != NULL && k > 1) {
      /* [out][in][k][k] -> [out][k][k][in]: the (ky, kx, ci) order of the pixel-major im2col. */
      const size_t per = (size_t)in * k * k;
      float *tmp = malloc(per * sizeof *tmp);
      if (tmp == NULL) {
         eerr(L->err, L->errlen, "out of memory");
         L->failed = 1;
         return l;
      }
      float *w = (float *)(uintptr_t)l.w; /* our own arena */
      for (int o = 0; o < out; o++) {
         float *wo = w + (size_t)o * per;
         for (int ci = 0; ci < in; ci++)
            for (int t = 0; t < k * k; t++)
               tmp[(size_t)t * in + ci] = wo[(size_t)ci * k * k + t];
         memcpy(wo, tmp, per * sizeof *tmp);
      }
      free(tmp);
   }
   return l;
}

static nrm_t need_norm(loader_t *L, const char *prefix, int c) {
   char wn[256], bn[256];
   snprintf(wn, sizeof wn, "%s.weight", prefix);
   snprintf(bn, sizeof bn, "%s.bias", prefix);
   nrm_t n;
   n.g = need(L, wn, c, -1, -1, -1);
   n.b = need(L, bn, c, -1, -1, -1);
   return n;
}

static resblock_t need_res(loader_t *L, const char *p, int cin, int cout, int C) {
   char n[128];
   resblock_t r;
   memset(&r, 0, sizeof r);
   r.cin = cin;
   r.cout = cout;
   snprintf(n, sizeof n, "%s.norm1", p); r.norm1 = need_norm(L, n, cin);
   snprintf(n, sizeof n, "%s.conv1", p); r.conv1 = need_conv(L, n, cout, cin, 3, 1);
   snprintf(n, sizeof n, "%s.norm2", p); r.norm2 = need_norm(L, n, cout);
   snprintf(n, sizeof n, "%s.film", p); r.film = need_lin(L, n, 2 * cout, C);
   snprintf(n, sizeof n, "%s.conv2", p); r.conv2 = need_conv(L, n, cout, cout, 3, 1);
   if (cin != cout) {
      r.has_skip = 1;
      snprintf(n, sizeof n, "%s.skip", p); r.skip = need_conv(L, n, cout, cin, 1, 0);
   }
   return r;
}

static void need_attn_mlp(loader_t *L, const char *p, int D, int hidden, lin_t *qkv, lin_t *proj,
                          lin_t *fc1, lin_t *fc2) {
   char n[128];
   snprintf(n, sizeof n, "%s.attn.qkv", p); *qkv = need_lin(L, n, 3 * D, D);
   snprintf(n, sizeof n, "%s.attn.proj", p); *proj = need_lin(L, n, D, D);
   snprintf(n, sizeof n, "%s.mlp.fc1", p); *fc1 = need_lin(L, n, hidden, D);
   snprintf(n, sizeof n, "%s.mlp.fc2", p); *fc2 = need_lin(L, n, D, hidden);
}

/* Reads one integer config entry into *out, checking 1 <= value <= max. */
static int cfg_int(const sj_value *cfg, const char *key, int max, int *out, char *err, size_t errlen) {
   const sj_value *v = sj_get(cfg, key);
   if (v == NULL || v->type != SJ_NUMBER || !v->is_uint || v->uint_value < 1 || v->uint_value > (uint64_t)max) {
      eerr(err, errlen, "config entry \"%s\" is missing or not an integer in [1, %d]", key, max);
      return 0;
   }
   *out = (int)v->uint_value;
   return 1;
}

static int parse_float_meta(const shapes_engine_t *e, const char *key, double lo, double hi, double *out,
                            char *err, size_t errlen) {
   const char *s = shapes_engine_meta(e, key);
   if (s == NULL)
      return 1;
   char jerr[128];
   sj_value *v = sj_parse(s, strlen(s), jerr, sizeof jerr);
   if (v == NULL || v->type != SJ_NUMBER || !(v->number >= lo && v->number <= hi)) {
      eerr(err, errlen, "metadata \"%s\" = \"%.40s\" is not a number in [%g, %g]", key, s, lo, hi);
      sj_free(v);
      return 0;
   }
   *out = v->number;
   sj_free(v);
   return 1;
}

/* Metadata `key`: a JSON array of `size` strings, entry 0 "<pad>" -> *out (owned, size entries). */
static int read_vocab(shapes_engine_t *e, const char *key, int size, char ***out, char *err, size_t errlen) {
   const char *vs = shapes_engine_meta(e, key);
   if (vs == NULL) {
      eerr(err, errlen, "metadata \"%s\" (the tokenizer's word list) is missing", key);
      return 0;
   }
   char jerr[256];
   sj_value *voc = sj_parse(vs, strlen(vs), jerr, sizeof jerr);
   if (voc == NULL || voc->type != SJ_ARRAY || voc->length != (size_t)size) {
      eerr(err, errlen, "metadata \"%s\" must be a JSON array of %d strings", key, size);
      sj_free(voc);
      return 0;
   }
   char **words = *out = calloc((size_t)size, sizeof *words);
   if (words == NULL) { sj_free(voc); eerr(err, errlen, "out of memory"); return 0; }
   for (int i = 0; i < size; i++) {
      if (voc->items[i].type != SJ_STRING) {
         eerr(err, errlen, "metadata \"%s\" entry %d is not a string", key, i);
         sj_free(voc);
         return 0;
      }
      words[i] = voc->items[i].string;
      voc->items[i].string = NULL;
      voc->items[i].type = SJ_NULL;
   }
   sj_free(voc);
   if (strcmp(words[0], "<pad>") != 0) {
      eerr(err, errlen, "%s entry 0 is \"%s\", expected \"<pad>\"", strcmp(key, "vocab") == 0 ? "vocabulary" : key,
           words[0]);
      return 0;
   }
   return 1;
}

static int read_config(shapes_engine_t *e, char *err, size_t errlen) {
   shapes_config_t *c = &e->cfg;
   const char *fmt = shapes_engine_meta(e, "format");
   const int corrector = fmt != NULL && strcmp(fmt, "assay-shapes-corrector-v1") == 0;
   if (fmt == NULL || (!corrector && strcmp(fmt, "assay-shapes-flow-v1") != 0)) {
      eerr(err, errlen, "metadata \"format\" is %s%s%s, expected \"assay-shapes-flow-v1\" or, for a corrector, "
           "\"assay-shapes-corrector-v1\" (not a shapes model export)", fmt ? "\"" : "", fmt ? fmt : "missing",
           fmt ? "\"" : "");
      return 0;
   }
   c->is_corrector = corrector;
   if (corrector) {
      /* A corrector is tuned from one base model: its export must say which (as a distilled
       * student names its teacher). */
      const char *base = shapes_engine_meta(e, "base_sha256");
      int hex = base != NULL && strlen(base) == 64;
      for (int i = 0; hex && i < 64; i++)
         hex = (base[i] >= '0' && base[i] <= '9') || (base[i] >= 'a' && base[i] <= 'f');
      if (!hex) {
         eerr(err, errlen, "corrector export without a valid metadata \"base_sha256\" (the SHA-256 of the base "
              "weights it was tuned from, 64 hex digits): %s", base ? "malformed" : "missing");
         return 0;
      }
   }
   const char *cs = shapes_engine_meta(e, "config");
   if (cs == NULL) {
      eerr(err, errlen, "metadata \"config\" (the model's hyperparameters as JSON) is missing");
      return 0;
   }
   char jerr[256];
   sj_value *cfg = sj_parse(cs, strlen(cs), jerr, sizeof jerr);
   if (cfg == NULL || cfg->type != SJ_OBJECT) {
      eerr(err, errlen, "metadata \"config\" is not a JSON object: %s", cfg ? "wrong type" : jerr);
      sj_free(cfg);
      return 0;
   }
   int ok = cfg_int(cfg, "image_size", 1024, &c->image_size, err, errlen) &&
            cfg_int(cfg, "in_channels", 16, &c->in_channels, err, errlen) &&
            cfg_int(cfg, "patch", 8, &c->patch, err, errlen) &&
            cfg_int(cfg, "ch0", 4096, &c->ch0, err, errlen) &&
            cfg_int(cfg, "ch1", 4096, &c->ch1, err, errlen) &&
            cfg_int(cfg, "width", 4096, &c->width, err, errlen) &&
            cfg_int(cfg, "heads", 256, &c->heads, err, errlen) &&
            cfg_int(cfg, "mlp_ratio", 16, &c->mlp_ratio, err, errlen) &&
            cfg_int(cfg, "text_layers", 64, &c->text_layers, err, errlen) &&
            cfg_int(cfg, "mid_layers", 256, &c->mid_layers, err, errlen) &&
            cfg_int(cfg, "cond_dim", 8192, &c->cond_dim, err, errlen) &&
            cfg_int(cfg, "time_freq_dim", 8192, &c->time_freq_dim, err, errlen) &&
            cfg_int(cfg, "groups", 4096, &c->groups, err, errlen) &&
            cfg_int(cfg, "vocab_size", 100000, &c->vocab_size, err, errlen) &&
            cfg_int(cfg, "max_tokens", 1024, &c->max_tokens, err, errlen);
   /* Corrector keys: all three for the corrector format, none for a base model. */
   static const char *const ckeys[3] = {"cond_channels", "ref_tokens", "ref_vocab_size"};
   if (ok && corrector) {
      ok = cfg_int(cfg, "cond_channels", 16, &c->cond_channels, err, errlen) &&
           cfg_int(cfg, "ref_tokens", 1024, &c->ref_tokens, err, errlen) &&
           cfg_int(cfg, "ref_vocab_size", 100000, &c->ref_vocab_size, err, errlen);
      if (ok && c->cond_channels != 3) {
         eerr(err, errlen, "config cond_channels is %d; the corrector's reference is an RGB image (3)",
              c->cond_channels);
         ok = 0;
      }
   } else if (ok) {
      for (int i = 0; i < 3 && ok; i++)
         if (sj_get(cfg, ckeys[i]) != NULL) {
            eerr(err, errlen, "config has the corrector key \"%s\" but the format is \"assay-shapes-flow-v1\" "
                 "(a corrector export says \"assay-shapes-corrector-v1\")", ckeys[i]);
            ok = 0;
         }
   }
   sj_free(cfg);
   if (!ok)
      return 0;
   if (c->width % c->heads || c->ch0 % c->groups || c->ch1 % c->groups || c->time_freq_dim % 2 ||
       c->image_size % (2 * c->patch) || c->image_size / c->patch / 2 < 1) {
      eerr(err, errlen, "config is inconsistent (width %% heads, ch0/ch1 %% groups, time_freq_dim even, "
           "image_size divisible by 2*patch)");
      return 0;
   }
   const char *mt = shapes_engine_meta(e, "max_tokens");
   if (mt != NULL && atoi(mt) != c->max_tokens) {
      eerr(err, errlen, "metadata max_tokens %s disagrees with config max_tokens %d", mt, c->max_tokens);
      return 0;
   }
   /* Vocabularies. */
   if (!read_vocab(e, "vocab", c->vocab_size, &e->vocab, err, errlen))
      return 0;
   if (corrector) {
      if (!read_vocab(e, "ref_vocab", c->ref_vocab_size, &e->ref_vocab, err, errlen))
         return 0;
      e->ref_unk = -1;
      for (int i = 1; i < c->ref_vocab_size && e->ref_unk < 0; i++)
         if (strcmp(e->ref_vocab[i], "<unk>") == 0)
            e->ref_unk = i;
      if (e->ref_unk < 0) {
         eerr(err, errlen, "metadata \"ref_vocab\" has no \"<unk>\" entry (the reflection tokenizer maps unknown "
              "words to it)");
         return 0;
      }
   }
   e->H1 = c->image_size / c->patch;
   e->S1 = e->H1 * e->H1;
   e->H2 = e->H1 / 2;
   e->S2 = e->H2 * e->H2;
   e->p2c = c->in_channels * c->patch * c->patch;
   e->p2c_in = (c->in_channels + c->cond_channels) * c->patch * c->patch;
   c->latent_size = c->in_channels * c->image_size * c->image_size;
   c->n_img = e->S2;
   c->text_tokens = c->max_tokens + c->ref_tokens;
   c->n_seq = c->text_tokens + c->n_img;
   c->condition_size = c->text_tokens * c->width + c->width + c->cond_channels * c->image_size * c->image_size;
   c->hidden_size = c->n_seq * c->width;
   c->context_size = c->cond_dim + c->ch0 * e->S1 + c->ch1 * e->S2;
   /* Sampling defaults. */
   double steps = 20, guidance = 1.75, shift = 1.0;
   if (!parse_float_meta(e, "default_steps", 1, 10000, &steps, err, errlen) ||
       !parse_float_meta(e, "default_guidance", 0, 100, &guidance, err, errlen) ||
       !parse_float_meta(e, "schedule_shift", 0.01, 100, &shift, err, errlen))
      return 0;
   c->default_steps = (int)steps;
   c->default_guidance = (float)guidance;
   c->schedule_shift = (float)shift;
   const char *ts = shapes_engine_meta(e, "steps");
   c->train_steps = ts != NULL ? atoll(ts) : -1;
   return 1;
}

static void ws_free(workspace_t *w) {
   if (w != NULL) {
      free(w->mem);
      free(w);
   }
}

shapes_engine_t *shapes_engine_load(const char *path, char *err, size_t errlen) {
   char ferr[512];
   st_file *f = st_open(path, ST_F16 | ST_F32, ferr, sizeof ferr);
   if (f == NULL) {
      eerr(err, errlen, "%s", ferr);
      return NULL;
   }
   shapes_engine_t *e = calloc(1, sizeof *e);
   loader_t L;
   memset(&L, 0, sizeof L);
   if (e == NULL) {
      st_close(f);
      eerr(err, errlen, "out of memory");
      return NULL;
   }
   pthread_mutex_init(&e->lock, NULL);
   e->meta = f->metadata; /* moved */
   f->metadata = NULL;
   char cerr[400];
   if (!read_config(e, cerr, sizeof cerr)) {
      eerr(err, errlen, "%s: %s", path, cerr);
      goto fail;
   }
   uint64_t total = 0;
   for (size_t i = 0; i < f->count; i++)
      total += f->tensors[i].numel;
   if (total > ((uint64_t)1 << 32)) {
      eerr(err, errlen, "%s: %llu parameters is far too many for this model", path, (unsigned long long)total);
      goto fail;
   }
   e->arena = malloc((size_t)(total ? total : 1) * sizeof(float));
   L.used = calloc(f->count ? f->count : 1, 1);
   if (e->arena == NULL || L.used == NULL) {
      eerr(err, errlen, "out of memory loading %s", path);
      goto fail;
   }
   L.e = e;
   L.f = f;
   L.next = e->arena;
   L.err = cerr;
   L.errlen = sizeof cerr;
   const shapes_config_t *c = &e->cfg;
   const int D = c->width, C = c->cond_dim, hid = c->width * c->mlp_ratio;
   e->tok_emb = need(&L, "text.tok_emb.weight", c->vocab_size, D, -1, -1);
   e->pos_emb = need(&L, "text.pos_emb", 1, c->max_tokens, D, -1);
   e->text = calloc((size_t)c->text_layers, sizeof *e->text);
   e->mid = calloc((size_t)c->mid_layers, sizeof *e->mid);
   if (e->text == NULL || e->mid == NULL) {
      eerr(err, errlen, "out of memory loading %s", path);
      goto fail;
   }
   char n[128];
   for (int i = 0; i < c->text_layers; i++) {
      textblock_t *b = &e->text[i];
      snprintf(n, sizeof n, "text.blocks.%d.norm1", i); b->norm1 = need_norm(&L, n, D);
      snprintf(n, sizeof n, "text.blocks.%d.norm2", i); b->norm2 = need_norm(&L, n, D);
      snprintf(n, sizeof n, "text.blocks.%d", i);
      need_attn_mlp(&L, n, D, hid, &b->qkv, &b->proj, &b->fc1, &b->fc2);
   }
   e->text_norm = need_norm(&L, "text.norm", D);
   e->text_pool = need_lin(&L, "text_pool", C, D);
   e->t_mlp0 = need_lin(&L, "t_mlp.0", C, c->time_freq_dim);
   e->t_mlp2 = need_lin(&L, "t_mlp.2", C, C);
   e->stem = need_conv(&L, "stem", c->ch0, e->p2c_in, 3, 0);
   if (c->is_corrector) {
      e->ref_tok_emb = need(&L, "ref.tok_emb.weight", c->ref_vocab_size, D, -1, -1);
      e->ref_pos_emb = need(&L, "ref.pos_emb", 1, c->ref_tokens, D, -1);
   }
   e->enc0 = need_res(&L, "enc0", c->ch0, c->ch0, C);
   e->down = need_conv(&L, "down", c->ch1, c->ch0, 3, 0);
   e->enc1 = need_res(&L, "enc1", c->ch1, c->ch1, C);
   e->img_in = need_lin(&L, "img_in", D, c->ch1);
   e->img_pos = need(&L, "img_pos", 1, c->n_img, D, -1);
   for (int i = 0; i < c->mid_layers; i++) {
      midblock_t *b = &e->mid[i];
      snprintf(n, sizeof n, "mid.%d", i);
      need_attn_mlp(&L, n, D, hid, &b->qkv, &b->proj, &b->fc1, &b->fc2);
      snprintf(n, sizeof n, "mid.%d.ada", i); b->ada = need_lin(&L, n, 6 * D, C);
   }
   e->img_out = need_lin(&L, "img_out", c->ch1, D);
   e->dec1 = need_res(&L, "dec1", 2 * c->ch1, c->ch1, C);
   e->up = need_conv(&L, "up", c->ch0, c->ch1, 3, 1);
   e->dec0 = need_res(&L, "dec0", 2 * c->ch0, c->ch0, C);
   e->out_norm = need_norm(&L, "out_norm", c->ch0);
   e->out_conv = need_conv(&L, "out_conv", e->p2c, c->ch0, 3, 1);
   if (L.failed) {
      eerr(err, errlen, "%s: %s", path, cerr);
      goto fail;
   }
   for (size_t i = 0; i < f->count; i++)
      if (!L.used[i]) {
         eerr(err, errlen, "%s: tensor \"%s\" is not part of the model its config describes "
              "(config mid_layers = %d, text_layers = %d): config and weights disagree",
              path, f->tensors[i].name, c->mid_layers, c->text_layers);
         goto fail;
      }
   free(L.used);
   st_close(f);
   return e;
fail:
   free(L.used);
   st_close(f);
   shapes_engine_free(e);
   return NULL;
}

void shapes_engine_free(shapes_engine_t *e) {
   if (e == NULL)
      return;
   while (e->pool != NULL) {
      workspace_t *w = e->pool;
      e->pool = w->next;
      ws_free(w);
   }
   pthread_mutex_destroy(&e->lock);
   for (int i = 0; i < e->n_wino; i++)
      free(e->wino[i]);
   if (e->vocab != NULL)
      for (int i = 0; i < e->cfg.vocab_size; i++)
         free(e->vocab[i]);
   free(e->vocab);
   if (e->ref_vocab != NULL)
      for (int i = 0; i < e->cfg.ref_vocab_size; i++)
         free(e->ref_vocab[i]);
   free(e->ref_vocab);
   free(e->text);
   free(e->mid);
   free(e->arena);
   sj_free(e->meta);
   free(e);
}

const shapes_config_t *shapes_engine_config(const shapes_engine_t *e) { return &e->cfg; }

const char *shapes_engine_meta(const shapes_engine_t *e, const char *key) {
   const sj_value *v = sj_get(e->meta, key);
   return v != NULL && v->type == SJ_STRING ? v->string : NULL;
}

void shapes_engine_cost(const shapes_engine_t *e, shapes_cost_t *cost) {
   const shapes_config_t *c = &e->cfg;
   const double D = c->width, N = c->n_seq, hid = (double)c->width * c->mlp_ratio, C = c->cond_dim;
   const double S1 = e->S1, S2 = e->S2, c0 = c->ch0, c1 = c->ch1;
   const double res0 = S1 * c0 * c0 * 9 * 2, res1 = S2 * c1 * c1 * 9 * 2;
   cost->prologue = C * (c->time_freq_dim + C + D) + S1 * c0 * e->p2c_in * 9 + res0 + S2 * c1 * c0 * 9 + res1 +
                    S2 * c1 * D + 2 * C * (c0 + c1);
   cost->block = C * 6 * D + N * D * 3 * D + N * D * D + 2 * N * D * hid + 2 * N * N * D;
   cost->epilogue = S2 * D * c1 + S2 * c1 * (2 * c1) * 9 + S2 * c1 * c1 * 9 + S2 * c1 * 2 * c1 +
                    S1 * c0 * c1 * 9 + S1 * c0 * 2 * c0 * 9 + S1 * c0 * c0 * 9 + S1 * c0 * 2 * c0 +
                    S1 * e->p2c * c0 * 9 + 2 * C * (c0 + c1);
}

/* ---- workspaces ------------------------------------------------------------------------ */

static size_t imax(size_t a, size_t b) { return a > b ? a : b; }

static workspace_t *ws_alloc(const shapes_engine_t *e, int cap) {
   const shapes_config_t *c = &e->cfg;
   const size_t n = (size_t)cap, D = (size_t)c->width, N = (size_t)c->n_seq;
   const size_t S1 = (size_t)e->S1, S2 = (size_t)e->S2, c0 = (size_t)c->ch0, c1 = (size_t)c->ch1;
   const size_t big = imax(imax(2 * c0 * S1, 2 * c1 * S2), imax((size_t)e->p2c_in * S1, c1 * S1));
   /* Every convolution's input channels (im2col scratch depends only on them). */
   const int conv_cin[] = {e->p2c_in, e->p2c, c->ch0, c->ch1, 2 * c->ch1, 2 * c->ch0};
   size_t colsz = 0;
   for (size_t i = 0; i < sizeof conv_cin / sizeof conv_cin[0]; i++)
      colsz = imax(colsz, op_conv3x3_col_floats(conv_cin[i]));
   /* Same-size convolutions (cin, cout) that may run as Winograd. */
   const int same[][2] = {{c->ch0, c->ch0}, {c->ch1, c->ch1}, {2 * c->ch1, c->ch1}, {c->ch1, c->ch0},
                          {2 * c->ch0, c->ch0}, {c->ch0, e->p2c}};
   for (size_t i = 0; i < sizeof same / sizeof same[0]; i++)
      if (wino_eligible(same[i][0], same[i][1]))
         colsz = imax(colsz, op_conv3x3_winograd_floats(same[i][0], same[i][1]));
   const size_t sizes[] = {
      (size_t)e->p2c_in * S1 * n,       /* z (p2c_in >= p2c) */
      c0 * S1 * n,                      /* h16 */
      2 * c0 * S1 * n,                  /* cat1 */
      c1 * S2 * n,                      /* h8 */
      2 * c1 * S2 * n,                  /* cat2 */
      big * n,                          /* tA */
      big * n,                          /* tB */
      colsz,                            /* col (chunked, independent of n) */
      (size_t)c->time_freq_dim * n,     /* temb */
      (size_t)c->cond_dim * n,          /* c1 */
      2 * imax(c0, c1) * n,             /* film */
      6 * D * n,                        /* ada */
      (size_t)c->hidden_size * n,       /* hidden */
      (size_t)c->context_size * n,      /* context */
      N * D * n,                        /* xln */
      3 * N * D * n,                    /* qkv */
      N * D * n,                        /* o */
      imax(N * D, S2 * c1) * n,         /* tmp */
      N * D * (size_t)c->mlp_ratio * n, /* mlp */
      N * N,                            /* S */
      S2 * c1 * n,                      /* tok */
      4 * 2 * imax(c0, c1),             /* stats (GroupNorm) */
   };
   const size_t count = sizeof sizes / sizeof sizes[0];
   size_t total = 0;
   for (size_t i = 0; i < count; i++)
      total += (sizes[i] + 15) & ~(size_t)15; /* 64-byte aligned offsets */
   workspace_t *w = calloc(1, sizeof *w);
   if (w == NULL)
      return NULL;
   void *mem = NULL;
   if (posix_memalign(&mem, 64, total * sizeof(float)) != 0) {
      free(w);
      return NULL;
   }
   w->mem = mem;
   w->cap = cap;
   float **slots[] = {&w->z, &w->h16, &w->cat1, &w->h8, &w->cat2, &w->tA, &w->tB, &w->col,
                      &w->temb, &w->c1, &w->film, &w->ada, &w->hidden, &w->context, &w->xln,
                      &w->qkv, &w->o, &w->tmp, &w->mlp, &w->S, &w->tok, &w->stats};
   float *p = w->mem;
   for (size_t i = 0; i < count; i++) {
      *slots[i] = p;
      p += (sizes[i] + 15) & ~(size_t)15;
   }
   return w;
}

static workspace_t *ws_acquire(shapes_engine_t *e, int n) {
   pthread_mutex_lock(&e->lock);
   workspace_t **pp = &e->pool;
   while (*pp != NULL && (*pp)->cap < n)
      pp = &(*pp)->next;
   workspace_t *w = *pp;
   if (w != NULL) {
      *pp = w->next;
      e->pool_size--;
   }
   pthread_mutex_unlock(&e->lock);
   if (w == NULL)
      w = ws_alloc(e, n < 4 ? 4 : n);
   return w;
}

static void ws_release(shapes_engine_t *e, workspace_t *w) {
   pthread_mutex_lock(&e->lock);
   if (e->pool_size < SHAPES_POOL_KEEP) {
      w->next = e->pool;
      e->pool = w;
      e->pool_size++;
      w = NULL;
   }
   pthread_mutex_unlock(&e->lock);
   ws_free(w);
}

/* The pool is the only mutable part of an engine and is guarded by its mutex. */
static shapes_engine_t *mut(const shapes_engine_t *e) { return (shapes_engine_t *)(uintptr_t)e; }

/* ---- tokenizer and text encoder -------------------------------------------------------- */

static int check_finite(const float *p, size_t count, const char *what, char *err, size_t errlen);

/* ASCII-only and locale-independent (the host may have called setlocale). */
static int tok_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static char tok_lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

int shapes_tokenize(const shapes_engine_t *e, const char *caption, int32_t *ids, char *err, size_t errlen) {
   if (caption == NULL || ids == NULL) {
      eerr(err, errlen, "tokenize: NULL argument");
      return SHAPES_EINVAL;
   }
   const int L = e->cfg.max_tokens;
   for (int i = 0; i < L; i++)
      ids[i] = 0;
   int count = 0;
   const char *p = caption;
   for (;;) {
      while (*p != 0 && tok_space(*p))
         p++;
      if (*p == 0)
         break;
      const char *s = p;
      while (*p != 0 && !tok_space(*p))
         p++;
      size_t len = (size_t)(p - s);
      if (count >= L) {
         int words = count;
         for (const char *q = s; *q;) { /* count the rest for the message */
            while (*q && tok_space(*q)) q++;
            if (!*q) break;
            words++;
            while (*q && !tok_space(*q)) q++;
         }
         eerr(err, errlen, "caption has %d words, max is %d: \"%.200s\"", words, L, caption);
         return SHAPES_EINVAL;
      }
      char word[64];
      int found = -1;
      if (len < sizeof word) {
         for (size_t k = 0; k < len; k++)
            word[k] = tok_lower(s[k]);
         word[len] = 0;
         for (int v = 1; v < e->cfg.vocab_size; v++)
            if (strcmp(e->vocab[v], word) == 0) {
               found = v;
               break;
            }
      }
      if (found < 0) {
         char vocab[512];
         size_t vp = 0;
         for (int v = 1; v < e->cfg.vocab_size && vp + 24 < sizeof vocab; v++)
            vp += (size_t)snprintf(vocab + vp, sizeof vocab - vp, "%s%s", v > 1 ? " " : "", e->vocab[v]);
         eerr(err, errlen, "unknown word \"%.*s\" in caption \"%.200s\"; vocabulary: %s", (int)(len > 60 ? 60 : len),
              s, caption, vocab);
         return SHAPES_EINVAL;
      }
      ids[count++] = found;
   }
   return SHAPES_OK;
}

/* Text encoder for n rows of L tokens, embedded with tok_emb / pos_emb (the caption's, or a
 * corrector's reflection embeddings; ids NULL = all <pad>): the hidden state after `layers`
 * blocks into raw [n*L][D], or (raw NULL) the final LayerNorm into out (per sample `ld`
 * floats apart) and, when pool_at >= 0, the mean of the L rows at out + pool_at. */
static void text_forward(const shapes_engine_t *e, workspace_t *w, int n, const int32_t *ids, int L,
                         const float *tok_emb, const float *pos_emb, int layers, float *raw, float *out,
                         size_t ld, long pool_at) {
   const shapes_config_t *c = &e->cfg;
   const int D = c->width, hid = D * c->mlp_ratio, rows = n * L;
   float *h = w->hidden; /* [n*L][D] (L <= n_seq) */
   for (int b = 0; b < n; b++)
      for (int l = 0; l < L; l++) {
         const int id = ids != NULL ? ids[b * L + l] : 0;
         const float *te = tok_emb + (size_t)id * D, *pe = pos_emb + (size_t)l * D;
         float *row = h + ((size_t)b * L + l) * D;
         for (int d = 0; d < D; d++)
            row[d] = te[d] + pe[d];
      }
   for (int i = 0; i < layers; i++) {
      const textblock_t *tb = &e->text[i];
      op_layernorm(rows, D, LN_EPS, h, D, tb->norm1.g, tb->norm1.b, w->xln, D);
      op_linear(n, L, 3 * D, D, w->xln, D, tb->qkv.w, tb->qkv.b, 0.0f, w->qkv, 3 * D);
      op_attention(n, L, D, c->heads, w->qkv, w->o, w->S);
      op_linear(n, L, D, D, w->o, D, tb->proj.w, tb->proj.b, 1.0f, h, D);
      op_layernorm(rows, D, LN_EPS, h, D, tb->norm2.g, tb->norm2.b, w->xln, D);
      op_linear(n, L, hid, D, w->xln, D, tb->fc1.w, tb->fc1.b, 0.0f, w->mlp, hid);
      op_gelu_tanh(w->mlp, (size_t)rows * hid);
      op_linear(n, L, D, hid, w->mlp, hid, tb->fc2.w, tb->fc2.b, 1.0f, h, D);
   }
   if (raw != NULL) {
      memcpy(raw, h, (size_t)rows * D * sizeof *raw);
      return;
   }
   for (int b = 0; b < n; b++) {
      float *o = out + (size_t)b * ld;
      op_layernorm(L, D, LN_EPS, h + (size_t)b * L * D, D, e->text_norm.g, e->text_norm.b, o, D);
      if (pool_at < 0)
         continue;
      float *pooled = o + pool_at;
      for (int d = 0; d < D; d++) {
         float s = 0.0f;
         for (int l = 0; l < L; l++)
            s += o[(size_t)l * D + d];
         pooled[d] = s / (float)L;
      }
   }
}

/* Conditions for n rows: caption encoding and its mean, then (corrector) the reflection's
 * encoding and the reference image (zeros when ref_img is NULL). */
static int encode_impl(const shapes_engine_t *e, uint32_t n, const int32_t *ids, const int32_t *ref_ids,
                       const float *ref_img, float *cond, const char *what, char *err, size_t errlen) {
   const shapes_config_t *c = &e->cfg;
   if (n > 0 && (ids == NULL || cond == NULL)) {
      eerr(err, errlen, "%s: NULL buffer", what);
      return SHAPES_EINVAL;
   }
   if (!c->is_corrector && (ref_ids != NULL || ref_img != NULL)) {
      eerr(err, errlen, "%s: a reflection or reference image was given, but this is a base model, not a "
           "corrector (format assay-shapes-flow-v1)", what);
      return SHAPES_EINVAL;
   }
   for (size_t i = 0; i < (size_t)n * c->max_tokens; i++)
      if (ids[i] < 0 || ids[i] >= c->vocab_size) {
         eerr(err, errlen, "%s: token id %d at position %zu is outside the vocabulary [0, %d)", what, (int)ids[i], i,
              c->vocab_size);
         return SHAPES_EINVAL;
      }
   for (size_t i = 0; ref_ids != NULL && i < (size_t)n * c->ref_tokens; i++)
      if (ref_ids[i] < 0 || ref_ids[i] >= c->ref_vocab_size) {
         eerr(err, errlen, "%s: reflection token id %d at position %zu is outside the reflection vocabulary [0, %d)",
              what, (int)ref_ids[i], i, c->ref_vocab_size);
         return SHAPES_EINVAL;
      }
   const size_t cs = (size_t)c->condition_size, D = (size_t)c->width, L = (size_t)c->max_tokens;
   const size_t T = (size_t)c->text_tokens, R = (size_t)c->ref_tokens;
   const size_t img = (size_t)c->cond_channels * c->image_size * c->image_size;
   for (uint32_t done = 0; done < n;) {
      int m = (int)(n - done < SHAPES_CHUNK ? n - done : SHAPES_CHUNK);
      workspace_t *w = ws_acquire(mut(e), m);
      if (w == NULL) {
         eerr(err, errlen, "out of memory");
         return SHAPES_ENOMEM;
      }
      float *out = cond + (size_t)done * cs;
      text_forward(e, w, m, ids + (size_t)done * L, (int)L, e->tok_emb, e->pos_emb, c->text_layers, NULL, out, cs,
                   (long)(T * D));
      if (c->is_corrector) {
         text_forward(e, w, m, ref_ids != NULL ? ref_ids + (size_t)done * R : NULL, (int)R, e->ref_tok_emb,
                      e->ref_pos_emb, c->text_layers, NULL, out + L * D, cs, -1);
         for (int b = 0; b < m; b++) {
            float *dst = out + (size_t)b * cs + (T + 1) * D;
            if (ref_img != NULL)
               memcpy(dst, ref_img + ((size_t)done + (size_t)b) * img, img * sizeof *dst);
            else
               memset(dst, 0, img * sizeof *dst);
         }
      }
      ws_release(mut(e), w);
      done += (uint32_t)m;
   }
   return SHAPES_OK;
}

int shapes_encode_text(const shapes_engine_t *e, uint32_t n, const int32_t *ids, float *cond, char *err,
                       size_t errlen) {
   return encode_impl(e, n, ids, NULL, NULL, cond, "encode_text", err, errlen);
}

int shapes_encode_cond(const shapes_engine_t *e, uint32_t n, const int32_t *ids, const int32_t *ref_ids,
                       const float *ref_img, float *cond, char *err, size_t errlen) {
   if (ref_img != NULL && !check_finite(ref_img, (size_t)n * e->cfg.cond_channels * e->cfg.image_size *
                                                    e->cfg.image_size, "reference image", err, errlen))
      return SHAPES_EINVAL;
   return encode_impl(e, n, ids, ref_ids, ref_img, cond, "encode_cond", err, errlen);
}

/* Python's str.split() whitespace within ASCII: \t..\r, 0x1c..0x1f and space. */
static int ref_space(char c) { return tok_space(c) || (c >= 0x1c && c <= 0x1f); }

int shapes_tokenize_reflection(const shapes_engine_t *e, const char *text, int32_t *ids, char *err,
                               size_t errlen) {
   const shapes_config_t *c = &e->cfg;
   if (text == NULL || ids == NULL) {
      eerr(err, errlen, "tokenize_reflection: NULL argument");
      return SHAPES_EINVAL;
   }
   if (!c->is_corrector) {
      eerr(err, errlen, "tokenize_reflection: this is a base model, not a corrector (it reads no reflection)");
      return SHAPES_EINVAL;
   }
   const int R = c->ref_tokens;
   for (int i = 0; i < R; i++)
      ids[i] = 0;
   int count = 0;
   for (const char *p = text; count < R;) {
      while (*p != 0 && ref_space(*p))
         p++;
      if (*p == 0)
         break;
      const char *s = p;
      if (*p == '.')
         p++; /* "." is a word of its own */
      else
         while (*p != 0 && *p != '.' && !ref_space(*p))
            p++;
      const size_t len = (size_t)(p - s);
      char word[64];
      int found = e->ref_unk;
      if (len < sizeof word) {
         for (size_t k = 0; k < len; k++)
            word[k] = tok_lower(s[k]);
         word[len] = 0;
         for (int v = 1; v < c->ref_vocab_size; v++) /* from 1: "<pad>" as a word is unknown */
            if (strcmp(e->ref_vocab[v], word) == 0) {
               found = v;
               break;
            }
      }
      ids[count++] = found;
   }
   return SHAPES_OK;
}

int shapes_encode_reference(const shapes_engine_t *e, const char *caption, const char *instruction,
                            const uint8_t *rgb, size_t stride, float *cond, char *err, size_t errlen) {
   const shapes_config_t *c = &e->cfg;
   if (!c->is_corrector) {
      eerr(err, errlen, "encode_reference: this is a base model, not a corrector (format "
           "assay-shapes-flow-v1): it takes no reference image or instruction");
      return SHAPES_EINVAL;
   }
   if (caption == NULL || instruction == NULL || cond == NULL) {
      eerr(err, errlen, "encode_reference: NULL argument");
      return SHAPES_EINVAL;
   }
   const int S = c->image_size;
   if (rgb != NULL && stride < (size_t)3 * S) {
      eerr(err, errlen, "encode_reference: row stride %zu is less than 3 x %d bytes", stride, S);
      return SHAPES_EINVAL;
   }
   int32_t ids[1024], rids[1024];
   int rc = shapes_tokenize(e, caption, ids, err, errlen);
   if (rc != SHAPES_OK)
      return rc;
   rc = shapes_tokenize_reflection(e, instruction, rids, err, errlen);
   if (rc != SHAPES_OK)
      return rc;
   float *img = NULL;
   if (rgb != NULL) {
      const size_t plane = (size_t)S * S;
      img = malloc((size_t)c->cond_channels * plane * sizeof *img);
      if (img == NULL) {
         eerr(err, errlen, "out of memory");
         return SHAPES_ENOMEM;
      }
      /* data.py to_float: uint8 HWC -> float32 CHW, v / 127.5 - 1 (float32 ops, the same bits). */
      for (int ch = 0; ch < c->cond_channels; ch++)
         for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++)
               img[(size_t)ch * plane + (size_t)y * S + x] = (float)rgb[(size_t)y * stride + (size_t)x * 3 + ch] / 127.5f - 1.0f;
   }
   rc = encode_impl(e, 1, ids, rids, img, cond, "encode_reference", err, errlen);
   free(img);
   return rc;
}

int shapes_text_hidden(const shapes_engine_t *e, uint32_t n, const int32_t *ids, int layers, float *h,
                       char *err, size_t errlen) {
   const int L = e->cfg.max_tokens, D = e->cfg.width;
   if (layers < 0 || layers > e->cfg.text_layers || (n > 0 && (ids == NULL || h == NULL))) {
      eerr(err, errlen, "text_hidden: bad arguments");
      return SHAPES_EINVAL;
   }
   for (size_t i = 0; i < (size_t)n * L; i++)
      if (ids[i] < 0 || ids[i] >= e->cfg.vocab_size) {
         eerr(err, errlen, "text_hidden: token id %d outside the vocabulary", (int)ids[i]);
         return SHAPES_EINVAL;
      }
   for (uint32_t done = 0; done < n;) {
      int m = (int)(n - done < SHAPES_CHUNK ? n - done : SHAPES_CHUNK);
      workspace_t *w = ws_acquire(mut(e), m);
      if (w == NULL) {
         eerr(err, errlen, "out of memory");
         return SHAPES_ENOMEM;
      }
      text_forward(e, w, m, ids + (size_t)done * L, L, e->tok_emb, e->pos_emb, layers, h + (size_t)done * L * D, NULL,
                   0, -1);
      ws_release(mut(e), w);
      done += (uint32_t)m;
   }
   return SHAPES_OK;
}

int shapes_encode(const shapes_engine_t *e, const char *caption, float *cond, char *err, size_t errlen) {
   int32_t ids[1024];
   int rc = shapes_tokenize(e, caption, ids, err, errlen);
   if (rc != SHAPES_OK)
      return rc;
   return shapes_encode_text(e, 1, ids, cond, err, errlen);
}

/* ---- image path ------------------------------------------------------------------------ */

/* Same-size 3x3 convolution: Winograd F(2x2,3x3) where the weights were transformed (and
 * a sample has at least WINO_MIN_TILES 2x2 tiles; measured here it pays from batch 1 on),
 * else im2col. The choice depends on the layer only, never on n (batch invariance). */
#ifndef WINO_MIN_TILES
#define WINO_MIN_TILES 1
#endif
static void conv_same(workspace_t *w, int n, int H, int cin, const float *in, int ldin, int cout, const lin_t *cv,
                      float beta, float *out, int ldout) {
   if (cv->u != NULL && H % 2 == 0 && (H / 2) * (H / 2) >= WINO_MIN_TILES)
      op_conv3x3_winograd(n, H, H, cin, in, ldin, cout, cv->u, cv->b, beta, out, ldout, w->col);
   else
      op_conv3x3(n, H, H, cin, in, ldin, cout, 1, cv->w, cv->b, beta, out, ldout, w->col);
}

/* ResBlock on x [n*H*H][cin] (row stride ldx) -> out [n*H*H][cout] (row stride ldout).
 * cs rows at stride ldcs. */
static void resblock(const shapes_engine_t *e, workspace_t *w, int n, const resblock_t *r, int H,
                     const float *x, int ldx, float *out, int ldout, const float *cs, int ldcs) {
   const int HW = H * H, G = e->cfg.groups, P = n * HW, ci = r->cin, co = r->cout;
   op_linear(n, 1, 2 * co, e->cfg.cond_dim, cs, ldcs, r->film.w, r->film.b, 0.0f, w->film, 2 * co);
   op_groupnorm(n, HW, ci, G, GN_EPS, x, ldx, r->norm1.g, r->norm1.b, NULL, 0, 1, w->tA, ci, w->stats);
   conv_same(w, n, H, ci, w->tA, ci, co, &r->conv1, 0.0f, w->tB, co);
   op_groupnorm(n, HW, co, G, GN_EPS, w->tB, co, r->norm2.g, r->norm2.b, w->film, 2 * co, 1, w->tA, co, w->stats);
   if (r->has_skip) {
      op_linear(n, HW, co, ci, x, ldx, r->skip.w, r->skip.b, 0.0f, out, ldout);
   } else if (out != x || ldout != ldx) {
      for (int p = 0; p < P; p++)
         memmove(out + (size_t)p * ldout, x + (size_t)p * ldx, (size_t)co * sizeof *out);
   }
   conv_same(w, n, H, co, w->tA, co, co, &r->conv2, 1.0f, out, ldout);
}

static void prologue_impl(const shapes_engine_t *e, workspace_t *w, int n, const float *x, const float *t,
                          const float *cond, float *hidden, float *context) {
   const shapes_config_t *c = &e->cfg;
   const int F = c->time_freq_dim, half = F / 2, C = c->cond_dim, D = c->width, L = c->text_tokens;
   const int ldc = c->context_size, S1 = e->S1, S2 = e->S2, H1 = e->H1, P = c->patch, IS = c->image_size;
   /* L: the text prefix (caption, and a corrector's reflection); the pooled vector follows it. */
   /* Condition vector cs = SiLU(t_mlp(temb(t)) + text_pool(pooled)), into the context. */
   for (int b = 0; b < n; b++) {
      const float arg0 = t[b] * 1000.0f;
      for (int k = 0; k < half; k++) {
         const float freq = (float)exp(-log(10000.0) * k / half);
         const float a = arg0 * freq;
         w->temb[(size_t)b * F + k] = (float)cos((double)a);
         w->temb[(size_t)b * F + half + k] = (float)sin((double)a);
      }
   }
   op_linear(n, 1, C, F, w->temb, F, e->t_mlp0.w, e->t_mlp0.b, 0.0f, w->c1, C);
   op_silu(w->c1, (size_t)n * C);
   op_linear(n, 1, C, C, w->c1, C, e->t_mlp2.w, e->t_mlp2.b, 0.0f, context, ldc);
   op_linear(n, 1, C, D, cond + (size_t)L * D, c->condition_size, e->text_pool.w, e->text_pool.b, 1.0f, context, ldc);
   for (int b = 0; b < n; b++)
      op_silu(context + (size_t)b * ldc, (size_t)C);
   /* pixel_unshuffle into pixel-major z[(b*H1 + y)*H1 + x][ch*P*P + i*P + j] = x[b][ch][P*y + i][P*x + j];
    * a corrector's reference image (behind the pooled vector in the condition) continues the
    * channels: pixel_unshuffle(concat(x, reference)). */
   const int p2c = e->p2c_in, c0 = c->ch0, c1 = c->ch1, CI = c->in_channels, CR = c->cond_channels;
   for (int b = 0; b < n; b++) {
      const float *ref = cond + (size_t)b * c->condition_size + (size_t)(L + 1) * D;
      for (int y = 0; y < H1; y++)
         for (int xx = 0; xx < H1; xx++) {
            float *dst = w->z + (((size_t)b * H1 + y) * H1 + xx) * p2c;
            for (int ch = 0; ch < CI; ch++)
               for (int i = 0; i < P; i++)
                  for (int j = 0; j < P; j++)
                     dst[ch * P * P + i * P + j] =
                        x[(((size_t)b * CI + ch) * IS + (size_t)(P * y + i)) * IS + P * xx + j];
            for (int ch = 0; ch < CR; ch++)
               for (int i = 0; i < P; i++)
                  for (int j = 0; j < P; j++)
                     dst[(CI + ch) * P * P + i * P + j] = ref[((size_t)ch * IS + (size_t)(P * y + i)) * IS + P * xx + j];
         }
   }
   float *s1 = w->cat1 + c0; /* second column block of the dec0 concat, row stride 2*c0 */
   float *s2 = w->cat2 + c1; /* second column block of the dec1 concat, row stride 2*c1 */
   op_conv3x3(n, H1, H1, p2c, w->z, p2c, c0, 1, e->stem.w, e->stem.b, 0.0f, w->h16, c0, w->col);
   resblock(e, w, n, &e->enc0, H1, w->h16, c0, s1, 2 * c0, context, ldc);
   op_conv3x3(n, H1, H1, c0, s1, 2 * c0, c1, 2, e->down.w, e->down.b, 0.0f, w->h8, c1, w->col);
   resblock(e, w, n, &e->enc1, e->H2, w->h8, c1, s2, 2 * c1, context, ldc);
   /* Skips into the context (per sample, pixel-major [S][C]). */
   for (int b = 0; b < n; b++) {
      float *ctx = context + (size_t)b * ldc + C;
      for (int p = 0; p < S1; p++)
         memcpy(ctx + (size_t)p * c0, s1 + ((size_t)b * S1 + p) * 2 * c0, (size_t)c0 * sizeof(float));
      ctx += (size_t)c0 * S1;
      for (int p = 0; p < S2; p++)
         memcpy(ctx + (size_t)p * c1, s2 + ((size_t)b * S2 + p) * 2 * c1, (size_t)c1 * sizeof(float));
   }
   /* Image tokens = the enc1 pixels (row-major y*W + x) -> img_in -> + img_pos; sequence = [txt; tokens]
    * (txt = caption, then a corrector's reflection: the first L rows of the condition). */
   op_linear(n, S2, D, c1, s2, 2 * c1, e->img_in.w, e->img_in.b, 0.0f, w->tmp, D);
   for (int b = 0; b < n; b++) {
      float *seq = hidden + (size_t)b * c->hidden_size;
      memcpy(seq, cond + (size_t)b * c->condition_size, (size_t)L * D * sizeof(float));
      for (int p = 0; p < S2; p++) {
         const float *src = w->tmp + ((size_t)b * S2 + p) * D, *pos = e->img_pos + (size_t)p * D;
         float *dst = seq + (size_t)(L + p) * D;
         for (int d = 0; d < D; d++)
            dst[d] = src[d] + pos[d];
      }
   }
}

static void block_impl(const shapes_engine_t *e, workspace_t *w, int index, int n, float *hidden,
                       const float *context) {
   const shapes_config_t *c = &e->cfg;
   const midblock_t *m = &e->mid[index];
   const int D = c->width, N = c->n_seq, hid = D * c->mlp_ratio, rows = n * N;
   op_linear(n, 1, 6 * D, c->cond_dim, context, c->context_size, m->ada.w, m->ada.b, 0.0f, w->ada, 6 * D);
   for (int half = 0; half < 2; half++) {
      op_layernorm(rows, D, LN_EPS, hidden, D, NULL, NULL, w->xln, D);
      for (int b = 0; b < n; b++) {
         const float *shift = w->ada + (size_t)b * 6 * D + (size_t)half * 3 * D, *scale = shift + D;
         for (int i = 0; i < N; i++) {
            float *row = w->xln + ((size_t)b * N + i) * D;
            for (int d = 0; d < D; d++)
               row[d] = row[d] * (1.0f + scale[d]) + shift[d];
         }
      }
      if (half == 0) {
         op_linear(n, N, 3 * D, D, w->xln, D, m->qkv.w, m->qkv.b, 0.0f, w->qkv, 3 * D);
         op_attention(n, N, D, c->heads, w->qkv, w->o, w->S);
         op_linear(n, N, D, D, w->o, D, m->proj.w, m->proj.b, 0.0f, w->tmp, D);
      } else {
         op_linear(n, N, hid, D, w->xln, D, m->fc1.w, m->fc1.b, 0.0f, w->mlp, hid);
         op_gelu_tanh(w->mlp, (size_t)rows * hid);
         op_linear(n, N, D, hid, w->mlp, hid, m->fc2.w, m->fc2.b, 0.0f, w->tmp, D);
      }
      for (int b = 0; b < n; b++) {
         const float *gate = w->ada + (size_t)b * 6 * D + (size_t)half * 3 * D + 2 * D;
         for (int i = 0; i < N; i++) {
            float *row = hidden + ((size_t)b * N + i) * D;
            const float *add = w->tmp + ((size_t)b * N + i) * D;
            for (int d = 0; d < D; d++)
               row[d] += gate[d] * add[d];
         }
      }
   }
}

static void epilogue_impl(const shapes_engine_t *e, workspace_t *w, int n, const float *hidden,
                          const float *context, float *v, float *mid_out) {
   const shapes_config_t *c = &e->cfg;
   const int D = c->width, L = c->text_tokens, S1 = e->S1, S2 = e->S2, C = c->cond_dim, ldc = c->context_size;
   const int c0 = c->ch0, c1 = c->ch1, P = c->patch, IS = c->image_size, H1 = e->H1, H2 = e->H2, p2c = e->p2c;
   float *s1 = w->cat1 + c0, *s2 = w->cat2 + c1;
   for (int b = 0; b < n; b++) {
      const float *ctx = context + (size_t)b * ldc + C;
      for (int p = 0; p < S1; p++)
         memcpy(s1 + ((size_t)b * S1 + p) * 2 * c0, ctx + (size_t)p * c0, (size_t)c0 * sizeof(float));
      ctx += (size_t)c0 * S1;
      for (int p = 0; p < S2; p++)
         memcpy(s2 + ((size_t)b * S2 + p) * 2 * c1, ctx + (size_t)p * c1, (size_t)c1 * sizeof(float));
   }
   for (int b = 0; b < n; b++)
      op_layernorm(S2, D, LN_EPS, hidden + (size_t)b * c->hidden_size + (size_t)L * D, D, NULL, NULL,
                   w->xln + (size_t)b * S2 * D, D);
   op_linear(n, S2, c1, D, w->xln, D, e->img_out.w, e->img_out.b, 0.0f, w->tok, c1);
   /* h = enc1 output + img_out(...): first column block of the dec1 concat. */
   for (int p = 0; p < n * S2; p++) {
      float *h = w->cat2 + (size_t)p * 2 * c1;
      const float *o = w->tok + (size_t)p * c1;
      for (int ch = 0; ch < c1; ch++)
         h[ch] = h[c1 + ch] + o[ch];
   }
   if (mid_out != NULL)
      for (int b = 0; b < n; b++)
         for (int ch = 0; ch < c1; ch++)
            for (int p = 0; p < S2; p++)
               mid_out[((size_t)b * c1 + ch) * S2 + p] = w->cat2[((size_t)b * S2 + p) * 2 * c1 + ch];
   resblock(e, w, n, &e->dec1, H2, w->cat2, 2 * c1, w->h8, c1, context, ldc);
   op_upsample2x(n, H2, H2, c1, w->h8, c1, w->tA);
   conv_same(w, n, H1, c1, w->tA, c1, c0, &e->up, 0.0f, w->cat1, 2 * c0);
   resblock(e, w, n, &e->dec0, H1, w->cat1, 2 * c0, w->h16, c0, context, ldc);
   op_groupnorm(n, S1, c0, c->groups, GN_EPS, w->h16, c0, e->out_norm.g, e->out_norm.b, NULL, 0, 1, w->tA, c0,
                w->stats);
   conv_same(w, n, H1, c0, w->tA, c0, p2c, &e->out_conv, 0.0f, w->z, p2c);
   /* pixel_shuffle (inverse of the unshuffle in the prologue). */
   for (int b = 0; b < n; b++)
      for (int y = 0; y < H1; y++)
         for (int xx = 0; xx < H1; xx++) {
            const float *src = w->z + (((size_t)b * H1 + y) * H1 + xx) * p2c;
            for (int ch = 0; ch < c->in_channels; ch++)
               for (int i = 0; i < P; i++)
                  for (int j = 0; j < P; j++)
                     v[(((size_t)b * c->in_channels + ch) * IS + (size_t)(P * y + i)) * IS + P * xx + j] =
                        src[ch * P * P + i * P + j];
         }
}

/* ---- public forward functions ---------------------------------------------------------- */

static int check_finite(const float *p, size_t count, const char *what, char *err, size_t errlen) {
   for (size_t i = 0; i < count; i++)
      if (!isfinite(p[i])) {
         eerr(err, errlen, "%s has a non-finite value at index %zu", what, i);
         return 0;
      }
   return 1;
}

int shapes_velocity(const shapes_engine_t *e, uint32_t n, const float *x, const float *t, const float *cond,
                    float *v, char *err, size_t errlen) {
   const shapes_config_t *c = &e->cfg;
   if (n > 0 && (x == NULL || t == NULL || cond == NULL || v == NULL)) {
      eerr(err, errlen, "velocity: NULL buffer");
      return SHAPES_EINVAL;
   }
   if (!check_finite(t, n, "t", err, errlen) || !check_finite(x, (size_t)n * c->latent_size, "x", err, errlen) ||
       !check_finite(cond, (size_t)n * c->condition_size, "condition", err, errlen))
      return SHAPES_EINVAL;
   for (uint32_t done = 0; done < n;) {
      const int m = (int)(n - done < SHAPES_CHUNK ? n - done : SHAPES_CHUNK);
      workspace_t *w = ws_acquire(mut(e), m);
      if (w == NULL) {
         eerr(err, errlen, "out of memory");
         return SHAPES_ENOMEM;
      }
      prologue_impl(e, w, m, x + (size_t)done * c->latent_size, t + done, cond + (size_t)done * c->condition_size,
                    w->hidden, w->context);
      for (int i = 0; i < c->mid_layers; i++)
         block_impl(e, w, i, m, w->hidden, w->context);
      epilogue_impl(e, w, m, w->hidden, w->context, v + (size_t)done * c->latent_size, NULL);
      ws_release(mut(e), w);
      done += (uint32_t)m;
   }
   return SHAPES_OK;
}

int shapes_prologue(const shapes_engine_t *e, uint32_t n, const float *x, const float *t, const float *cond,
                    float *hidden, float *context, char *err, size_t errlen) {
   const shapes_config_t *c = &e->cfg;
   if (n > 0 && (x == NULL || t == NULL || cond == NULL || hidden == NULL || context == NULL)) {
      eerr(err, errlen, "prologue: NULL buffer");
      return SHAPES_EINVAL;
   }
   if (!check_finite(t, n, "t", err, errlen) || !check_finite(x, (size_t)n * c->latent_size, "x", err, errlen) ||
       !check_finite(cond, (size_t)n * c->condition_size, "condition", err, errlen))
      return SHAPES_EINVAL;
   for (uint32_t done = 0; done < n;) {
      const int m = (int)(n - done < SHAPES_CHUNK ? n - done : SHAPES_CHUNK);
      workspace_t *w = ws_acquire(mut(e), m);
      if (w == NULL) {
         eerr(err, errlen, "out of memory");
         return SHAPES_ENOMEM;
      }
      prologue_impl(e, w, m, x + (size_t)done * c->latent_size, t + done, cond + (size_t)done * c->condition_size,
                    hidden + (size_t)done * c->hidden_size, context + (size_t)done * c->context_size);
      ws_release(mut(e), w);
      done += (uint32_t)m;
   }
   return SHAPES_OK;
}

int shapes_block(const shapes_engine_t *e, uint32_t index, uint32_t n, float *hidden, const float *context,
                 char *err, size_t errlen) {
   const shapes_config_t *c = &e->cfg;
   if (index >= (uint32_t)c->mid_layers) {
      eerr(err, errlen, "block index %u out of range (the model has %d middle blocks)", index, c->mid_layers);
      return SHAPES_EINVAL;
   }
   if (n > 0 && (hidden == NULL || context == NULL)) {
      eerr(err, errlen, "block: NULL buffer");
      return SHAPES_EINVAL;
   }
   for (uint32_t done = 0; done < n;) {
      const int m = (int)(n - done < SHAPES_CHUNK ? n - done : SHAPES_CHUNK);
      workspace_t *w = ws_acquire(mut(e), m);
      if (w == NULL) {
         eerr(err, errlen, "out of memory");
         return SHAPES_ENOMEM;
      }
      block_impl(e, w, (int)index, m, hidden + (size_t)done * c->hidden_size, context + (size_t)done * c->context_size);
      ws_release(mut(e), w);
      done += (uint32_t)m;
   }
   return SHAPES_OK;
}

int shapes_epilogue(const shapes_engine_t *e, uint32_t n, const float *hidden, const float *context, float *v,
                    float *mid_out, char *err, size_t errlen) {
   const shapes_config_t *c = &e->cfg;
   if (n > 0 && (hidden == NULL || context == NULL || v == NULL)) {
      eerr(err, errlen, "epilogue: NULL buffer");
      return SHAPES_EINVAL;
   }
   const size_t mo = (size_t)c->ch1 * e->S2;
   for (uint32_t done = 0; done < n;) {
      const int m = (int)(n - done < SHAPES_CHUNK ? n - done : SHAPES_CHUNK);
      workspace_t *w = ws_acquire(mut(e), m);
      if (w == NULL) {
         eerr(err, errlen, "out of memory");
         return SHAPES_ENOMEM;
      }
      epilogue_impl(e, w, m, hidden + (size_t)done * c->hidden_size, context + (size_t)done * c->context_size,
                    v + (size_t)done * c->latent_size, mid_out ? mid_out + done * mo : NULL);
      ws_release(mut(e), w);
      done += (uint32_t)m;
   }
   return SHAPES_OK;
}

const float *shapes_context_cs(const shapes_engine_t *e, const float *context, uint32_t i) {
   return context + (size_t)i * e->cfg.context_size;
}

void shapes_context_enc1(const shapes_engine_t *e, const float *context, uint32_t i, float *chw) {
   const int c1 = e->cfg.ch1, S2 = e->S2;
   const float *s2 = context + (size_t)i * e->cfg.context_size + e->cfg.cond_dim + (size_t)e->cfg.ch0 * e->S1;
   for (int ch = 0; ch < c1; ch++)
      for (int p = 0; p < S2; p++)
         chw[(size_t)ch * S2 + p] = s2[(size_t)p * c1 + ch];
}
