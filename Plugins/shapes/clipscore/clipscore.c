/* clipscore.c: see clipscore.h. */
#include "clipscore.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/json.h"
#include "../engine/safetensors.h"

#define CS_FORMAT "shapes-clipscore/1"
#define CS_IN_CHANNELS 5 /* RGB + X, Y coordinate planes */

typedef struct cs_conv {
   int cin, cout, stride;
   float *w; /* (cout, cin, 3, 3) */
   float *b; /* cout */
} cs_conv;

typedef struct cs_linear {
   int in, out;
   float *w; /* (out, in) */
   float *b; /* out */
} cs_linear;

struct cs_model {
   st_file *file;
   cs_conv conv[3];
   cs_linear img_fc1, img_fc2, txt_fc1, txt_fc2;
   int vocab, tok_dim, embed;
   float *emb[CS_MAX_TOKENS]; /* (vocab, tok_dim) each */
   char words[CS_MAX_VOCAB][CS_MAX_WORD];
   double logit_scale;
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void cs_err(char *err, size_t errlen, const char *fmt, ...) {
   if (err == NULL || errlen == 0)
      return;
   va_list ap;
   va_start(ap, fmt);
   vsnprintf(err, errlen, fmt, ap);
   va_end(ap);
}

void cs_model_free(cs_model *m) {
   if (m == NULL)
      return;
   for (int i = 0; i < 3; i++) {
      free(m->conv[i].w);
      free(m->conv[i].b);
   }
   cs_linear *ls[4] = {&m->img_fc1, &m->img_fc2, &m->txt_fc1, &m->txt_fc2};
   for (int i = 0; i < 4; i++) {
      free(ls[i]->w);
      free(ls[i]->b);
   }
   for (int p = 0; p < CS_MAX_TOKENS; p++)
      free(m->emb[p]);
   st_close(m->file);
   free(m);
}

/* Finds `name` with exactly `ndim` dims; dims[k] < 0 means "any" and receives the value.
 * Returns a float32 copy, or NULL with err. */
static float *cs_tensor(cs_model *m, const char *label, const char *name, int ndim, long *dims,
                        char *err, size_t errlen) {
   const st_tensor *t = st_find(m->file, name);
   if (t == NULL) {
      cs_err(err, errlen, "%s: tensor \"%s\" is missing (not a shapes-clipscore weights file?)",
             label, name);
      return NULL;
   }
   if (t->dtype != ST_F16 && t->dtype != ST_F32) {
      cs_err(err, errlen, "%s: tensor \"%s\" has dtype %s; F16 or F32 expected", label, name,
             st_dtype_name(t->dtype));
      return NULL;
   }
   int ok = t->ndim == ndim;
   for (int k = 0; ok && k < ndim; k++) {
      if (t->shape[k] == 0 || t->shape[k] > 4096)
         ok = 0;
      else if (dims[k] >= 0 && (long)t->shape[k] != dims[k])
         ok = 0;
   }
   if (!ok) {
      char want[128] = "", got[128] = "";
      size_t wl = 0, gl = 0;
      for (int k = 0; k < ndim && wl < sizeof want; k++)
         wl += (size_t)snprintf(want + wl, sizeof want - wl, k ? ",%ld" : "%ld", dims[k]);
      for (int k = 0; k < t->ndim && gl < sizeof got; k++)
         gl += (size_t)snprintf(got + gl, sizeof got - gl, k ? ",%llu" : "%llu",
                                (unsigned long long)t->shape[k]);
      cs_err(err, errlen, "%s: tensor \"%s\" has shape [%s]; expected [%s] (-1 = any size "
             "1..4096)", label, name, got, want);
      return NULL;
   }
   for (int k = 0; k < ndim; k++)
      dims[k] = (long)t->shape[k];
   float *out = malloc((size_t)t->numel * sizeof *out);
   if (out == NULL) {
      cs_err(err, errlen, "%s: out of memory reading \"%s\"", label, name);
      return NULL;
   }
   st_to_f32(m->file, t, out);
   for (uint64_t i = 0; i < t->numel; i++)
      if (!isfinite(out[i])) {
         cs_err(err, errlen, "%s: tensor \"%s\" holds a non-finite value at index %llu", label,
                name, (unsigned long long)i);
         free(out);
         return NULL;
      }
   return out;
}

static int cs_load_conv(cs_model *m, const char *label, const char *prefix, cs_conv *c, long cin,
                        int stride, char *err, size_t errlen) {
   char name[64];
   long wd[4] = {-1, cin, 3, 3};
   snprintf(name, sizeof name, "%s.weight", prefix);
   if ((c->w = cs_tensor(m, label, name, 4, wd, err, errlen)) == NULL)
      return -1;
   long bd[1] = {wd[0]};
   snprintf(name, sizeof name, "%s.bias", prefix);
   if ((c->b = cs_tensor(m, label, name, 1, bd, err, errlen)) == NULL)
      return -1;
   c->cin = (int)cin;
   c->cout = (int)wd[0];
   c->stride = stride;
   return 0;
}

static int cs_load_linear(cs_model *m, const char *label, const char *prefix, cs_linear *l,
                          long in, long out, char *err, size_t errlen) {
   char name[64];
   long wd[2] = {out, in};
   snprintf(name, sizeof name, "%s.weight", prefix);
   if ((l->w = cs_tensor(m, label, name, 2, wd, err, errlen)) == NULL)
      return -1;
   long bd[1] = {wd[0]};
   snprintf(name, sizeof name, "%s.bias", prefix);
   if ((l->b = cs_tensor(m, label, name, 1, bd, err, errlen)) == NULL)
      return -1;
   l->in = (int)wd[1];
   l->out = (int)wd[0];
   return 0;
}

/* Metadata checks: format, vocabulary (a JSON list of distinct lower-case words, "<pad>" first),
 * architecture (a JSON object whose embed_dim and conv strides agree with this code). */
static int cs_check_meta(cs_model *m, const char *label, char *err, size_t errlen) {
   const char *fmt = st_meta(m->file, "format");
   if (fmt == NULL || strcmp(fmt, CS_FORMAT) != 0) {
      cs_err(err, errlen, "%s: metadata \"format\" is %s%.40s%s; expected \"%s\" (not a "
             "shapes-clipscore weights file?)", label, fmt ? "\"" : "", fmt ? fmt : "missing",
             fmt ? "\"" : "", CS_FORMAT);
      return -1;
   }
   const char *vocab = st_meta(m->file, "vocab");
   if (vocab == NULL) {
      cs_err(err, errlen, "%s: metadata \"vocab\" (the tokenizer's word list) is missing", label);
      return -1;
   }
   char jerr[256];
   sj_value *v = sj_parse(vocab, strlen(vocab), jerr, sizeof jerr);
   if (v == NULL) {
      cs_err(err, errlen, "%s: metadata \"vocab\" is not valid JSON: %s", label, jerr);
      return -1;
   }
   int rc = 0;
   if (v->type != SJ_ARRAY || v->length < 2 || v->length > CS_MAX_VOCAB) {
      cs_err(err, errlen, "%s: metadata \"vocab\" must be a JSON list of 2..%d strings", label,
             CS_MAX_VOCAB);
      rc = -1;
   }
   for (size_t i = 0; rc == 0 && i < v->length; i++) {
      const sj_value *w = &v->items[i];
      int good = w->type == SJ_STRING && w->length > 0 && w->length < CS_MAX_WORD;
      for (size_t k = 0; good && k < w->length; k++) {
         unsigned char ch = (unsigned char)w->string[k];
         if (ch <= ' ' || ch >= 0x7f || (ch >= 'A' && ch <= 'Z'))
            good = 0;
      }
      if (good && i == 0 && strcmp(w->string, "<pad>") != 0)
         good = 0;
      for (size_t j = 0; good && j < i; j++)
         if (strcmp(m->words[j], w->string) == 0)
            good = 0;
      if (!good) {
         cs_err(err, errlen, "%s: metadata \"vocab\" entry %zu is not a distinct lower-case "
                "ASCII word of 1..%d bytes (entry 0 must be \"<pad>\")", label, i, CS_MAX_WORD - 1);
         rc = -1;
         break;
      }
      memcpy(m->words[i], w->string, w->length + 1);
   }
   if (rc == 0)
      m->vocab = (int)v->length;
   sj_free(v);
   if (rc != 0)
      return rc;

   const char *arch = st_meta(m->file, "architecture");
   if (arch == NULL) {
      cs_err(err, errlen, "%s: metadata \"architecture\" is missing", label);
      return -1;
   }
   v = sj_parse(arch, strlen(arch), jerr, sizeof jerr);
   if (v == NULL) {
      cs_err(err, errlen, "%s: metadata \"architecture\" is not valid JSON: %s", label, jerr);
      return -1;
   }
   const sj_value *ed = sj_get(v, "embed_dim");
   const sj_value *img = sj_get(v, "image");
   const sj_value *convs = img ? sj_get(img, "convs") : NULL;
   const sj_value *txt = sj_get(v, "text");
   const sj_value *mt = txt ? sj_get(txt, "max_tokens") : NULL;
   if (v->type != SJ_OBJECT || ed == NULL || ed->type != SJ_NUMBER || !ed->is_uint ||
       convs == NULL || convs->type != SJ_ARRAY || convs->length != 3 || mt == NULL ||
       mt->type != SJ_NUMBER || !mt->is_uint || mt->uint_value != CS_MAX_TOKENS) {
      cs_err(err, errlen, "%s: metadata \"architecture\" lacks embed_dim, image.convs (3 "
             "entries) or text.max_tokens = %d", label, CS_MAX_TOKENS);
      rc = -1;
   }
   static const int strides[3] = {1, 2, 2};
   for (size_t i = 0; rc == 0 && i < 3; i++) {
      const sj_value *s = sj_get(&convs->items[i], "stride");
      if (s == NULL || s->type != SJ_NUMBER || !s->is_uint || s->uint_value != (uint64_t)strides[i]) {
         cs_err(err, errlen, "%s: architecture: conv %zu must have stride %d (this build "
                "implements strides 1, 2, 2)", label, i + 1, strides[i]);
         rc = -1;
      }
   }
   if (rc == 0)
      m->embed = (int)(ed->uint_value > 4096 ? 0 : ed->uint_value);
   sj_free(v);
   if (rc != 0)
      return rc;
   const char *ls = st_meta(m->file, "logit_scale");
   m->logit_scale = ls ? strtod(ls, NULL) : 0.0;
   if (!isfinite(m->logit_scale))
      m->logit_scale = 0.0;
   return 0;
}

static cs_model *cs_build(st_file *file, const char *label, char *err, size_t errlen) {
   cs_model *m = calloc(1, sizeof *m);
   if (m == NULL) {
      st_close(file);
      cs_err(err, errlen, "%s: out of memory", label);
      return NULL;
   }
   m->file = file;
   if (cs_check_meta(m, label, err, errlen) != 0)
      goto fail;
   static const char *convs[3] = {"img.conv1", "img.conv2", "img.conv3"};
   static const int strides[3] = {1, 2, 2};
   long cin = CS_IN_CHANNELS;
   for (int i = 0; i < 3; i++) {
      if (cs_load_conv(m, label, convs[i], &m->conv[i], cin, strides[i], err, errlen) != 0)
         goto fail;
      cin = m->conv[i].cout;
   }
   if (cs_load_linear(m, label, "img.fc1", &m->img_fc1, cin, -1, err, errlen) != 0 ||
       cs_load_linear(m, label, "img.fc2", &m->img_fc2, m->img_fc1.out, m->embed, err, errlen) != 0)
      goto fail;
   long tok_dim = -1;
   for (int p = 0; p < CS_MAX_TOKENS; p++) {
      char name[64];
      snprintf(name, sizeof name, "txt.emb.%d.weight", p);
      long d[2] = {m->vocab, tok_dim};
      if ((m->emb[p] = cs_tensor(m, label, name, 2, d, err, errlen)) == NULL)
         goto fail;
      tok_dim = d[1];
   }
   m->tok_dim = (int)tok_dim;
   if (cs_load_linear(m, label, "txt.fc1", &m->txt_fc1, tok_dim * CS_MAX_TOKENS, -1, err,
                      errlen) != 0 ||
       cs_load_linear(m, label, "txt.fc2", &m->txt_fc2, m->txt_fc1.out, m->embed, err, errlen) != 0)
      goto fail;
   return m;
fail:
   cs_model_free(m);
   return NULL;
}

cs_model *cs_model_load(const char *path, char *err, size_t errlen) {
   st_file *f = st_open(path, ST_F16 | ST_F32, err, errlen);
   return f ? cs_build(f, path, err, errlen) : NULL;
}

cs_model *cs_model_load_memory(const uint8_t *bytes, size_t size, const char *label, char *err,
                               size_t errlen) {
   st_file *f = st_open_memory(bytes, size, label, ST_F16 | ST_F32, err, errlen);
   return f ? cs_build(f, label, err, errlen) : NULL;
}

int cs_embed_dim(const cs_model *m) { return m->embed; }
int cs_vocab_size(const cs_model *m) { return m->vocab; }
double cs_logit_scale(const cs_model *m) { return m->logit_scale; }
const char *cs_meta(const cs_model *m, const char *key) { return st_meta(m->file, key); }

/* ---- tokenizer ------------------------------------------------------------------------ */

/* Python's str.split() separators in the ASCII range. */
static int cs_space(unsigned char c) {
   return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

int cs_tokenize(const cs_model *m, const char *caption, int32_t tokens[CS_MAX_TOKENS], char *err,
                size_t errlen) {
   for (int i = 0; i < CS_MAX_TOKENS; i++)
      tokens[i] = 0;
   int count = 0;
   const unsigned char *s = (const unsigned char *)caption;
   while (*s) {
      while (*s && cs_space(*s))
         s++;
      if (!*s)
         break;
      const unsigned char *start = s;
      while (*s && !cs_space(*s))
         s++;
      size_t len = (size_t)(s - start);
      char word[CS_MAX_WORD];
      int id = -1;
      if (len < CS_MAX_WORD) {
         for (size_t k = 0; k < len; k++)
            word[k] = (char)((start[k] >= 'A' && start[k] <= 'Z') ? start[k] + 32 : start[k]);
         word[len] = '\0';
         for (int v = 1; v < m->vocab; v++) /* id 0 (<pad>) is never a word */
            if (strcmp(m->words[v], word) == 0) {
               id = v;
               break;
            }
      }
      if (id < 0) {
         char shown[48];
         size_t n = len < 40 ? len : 40;
         for (size_t k = 0; k < n; k++)
            shown[k] = start[k] < 0x20 || start[k] >= 0x7f ? '?' : (char)start[k];
         shown[n] = '\0';
         char known[CS_MAX_VOCAB * 4] = "";
         size_t kl = 0;
         for (int v = 1; v < m->vocab && kl < sizeof known - CS_MAX_WORD - 4; v++)
            kl += (size_t)snprintf(known + kl, sizeof known - kl, v > 1 ? ", %s" : "%s", m->words[v]);
         cs_err(err, errlen, "unknown word \"%s%s\" (word %d); the vocabulary is: %s", shown,
                len > n ? "..." : "", count + 1, known);
         return -1;
      }
      if (count >= CS_MAX_TOKENS) {
         int total = count + 1;
         while (*s) {
            while (*s && cs_space(*s))
               s++;
            if (!*s)
               break;
            total++;
            while (*s && !cs_space(*s))
               s++;
         }
         cs_err(err, errlen, "the caption has %d words; at most %d are allowed", total,
                CS_MAX_TOKENS);
         return -1;
      }
      tokens[count++] = id;
   }
   return 0;
}

/* ---- forward -------------------------------------------------------------------------- */

/* 3x3 convolution, zero padding 1, then ReLU. in (cin, h, w) -> out (cout, h/s, w/s).
 * `cols` (cin * 9 * (h/s) * (w/s) floats) receives the patches (im2col: row k = ci * 9 + ky * 3 +
 * kx holds input pixel (oy * s + ky - 1, ox * s + kx - 1) for every output pixel, 0 outside), so
 * the inner loop is a contiguous multiply-add over the output pixels (vectorised by -O3). */
static void cs_conv_relu(const cs_conv *c, const float *in, int h, int w, float *cols, float *out) {
   const int s = c->stride, ho = h / s, wo = w / s, np = ho * wo;
   for (int ci = 0; ci < c->cin; ci++)
      for (int ky = 0; ky < 3; ky++)
         for (int kx = 0; kx < 3; kx++) {
            float *row = cols + ((size_t)ci * 9 + (size_t)ky * 3 + (size_t)kx) * np;
            const float *ip = in + (size_t)ci * h * w;
            for (int oy = 0; oy < ho; oy++) {
               const int iy = oy * s + ky - 1;
               for (int ox = 0; ox < wo; ox++) {
                  const int ix = ox * s + kx - 1;
                  row[oy * wo + ox] = (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                         ? 0.0f : ip[(size_t)iy * w + ix];
               }
            }
         }
   const int K = c->cin * 9;
   for (int co = 0; co < c->cout; co++) {
      float *o = out + (size_t)co * np;
      const float *wr = c->w + (size_t)co * K;
      for (int i = 0; i < np; i++)
         o[i] = c->b[co];
      for (int k = 0; k < K; k++) {
         const float wv = wr[k];
         const float *row = cols + (size_t)k * np;
         for (int i = 0; i < np; i++)
            o[i] += wv * row[i];
      }
      for (int i = 0; i < np; i++)
         o[i] = o[i] > 0.0f ? o[i] : 0.0f;
   }
}

static void cs_linear_fwd(const cs_linear *l, const float *in, float *out, int relu) {
   for (int o = 0; o < l->out; o++) {
      const float *wr = l->w + (size_t)o * l->in;
      float acc = 0.0f;
      for (int i = 0; i < l->in; i++)
         acc += wr[i] * in[i];
      acc += l->b[o];
      out[o] = relu && acc < 0.0f ? 0.0f : acc;
   }
}

static void cs_normalize(float *x, int n) {
   double ss = 0.0;
   for (int i = 0; i < n; i++)
      ss += (double)x[i] * x[i];
   const double norm = sqrt(ss);
   const float inv = (float)(1.0 / (norm > 1e-12 ? norm : 1e-12)); /* F.normalize's eps */
   for (int i = 0; i < n; i++)
      x[i] *= inv;
}

int cs_embed_image(const cs_model *m, const uint8_t *pixels, uint32_t stride, float *out) {
   const int S = CS_IMAGE_SIZE;
   const size_t n0 = (size_t)CS_IN_CHANNELS * S * S;
   const size_t n1 = (size_t)m->conv[0].cout * S * S;
   const size_t n2 = (size_t)m->conv[1].cout * (S / 2) * (S / 2);
   const size_t n3 = (size_t)m->conv[2].cout * (S / 4) * (S / 4);
   const size_t nh = (size_t)m->img_fc1.out + (size_t)m->conv[2].cout;
   /* im2col scratch: the largest of the three layers' patch matrices */
   size_t nc = (size_t)CS_IN_CHANNELS * 9 * S * S;
   if ((size_t)m->conv[0].cout * 9 * (S / 2) * (S / 2) > nc)
      nc = (size_t)m->conv[0].cout * 9 * (S / 2) * (S / 2);
   if ((size_t)m->conv[1].cout * 9 * (S / 4) * (S / 4) > nc)
      nc = (size_t)m->conv[1].cout * 9 * (S / 4) * (S / 4);
   float *buf = malloc((n0 + n1 + n2 + n3 + nh + nc) * sizeof *buf);
   if (buf == NULL)
      return -1;
   float *x0 = buf, *x1 = x0 + n0, *x2 = x1 + n1, *x3 = x2 + n2, *pool = x3 + n3;
   float *hid = pool + m->conv[2].cout;
   float *cols = hid + m->img_fc1.out;
   for (int y = 0; y < S; y++)
      for (int x = 0; x < S; x++) {
         const uint8_t *p = pixels + (size_t)y * stride + (size_t)x * 3;
         for (int c = 0; c < 3; c++)
            x0[((size_t)c * S + y) * S + x] = (float)p[c] / 127.5f - 1.0f;
         x0[((size_t)3 * S + y) * S + x] = ((float)x + 0.5f) / 16.0f - 1.0f;
         x0[((size_t)4 * S + y) * S + x] = ((float)y + 0.5f) / 16.0f - 1.0f;
      }
   cs_conv_relu(&m->conv[0], x0, S, S, cols, x1);
   cs_conv_relu(&m->conv[1], x1, S, S, cols, x2);
   cs_conv_relu(&m->conv[2], x2, S / 2, S / 2, cols, x3);
   const int np = (S / 4) * (S / 4);
   for (int c = 0; c < m->conv[2].cout; c++) {
      float acc = 0.0f;
      for (int i = 0; i < np; i++)
         acc += x3[(size_t)c * np + i];
      pool[c] = acc / (float)np;
   }
   cs_linear_fwd(&m->img_fc1, pool, hid, 1);
   cs_linear_fwd(&m->img_fc2, hid, out, 0);
   cs_normalize(out, m->embed);
   free(buf);
   return 0;
}

int cs_embed_text(const cs_model *m, const int32_t tokens[CS_MAX_TOKENS], float *out) {
   const size_t n = (size_t)m->tok_dim * CS_MAX_TOKENS;
   float *buf = malloc((n + (size_t)m->txt_fc1.out) * sizeof *buf);
   if (buf == NULL)
      return -1;
   float *hid = buf + n;
   for (int p = 0; p < CS_MAX_TOKENS; p++) {
      int t = tokens[p];
      if (t < 0 || t >= m->vocab)
         t = 0;
      memcpy(buf + (size_t)p * m->tok_dim, m->emb[p] + (size_t)t * m->tok_dim,
             (size_t)m->tok_dim * sizeof *buf);
   }
   cs_linear_fwd(&m->txt_fc1, buf, hid, 1);
   cs_linear_fwd(&m->txt_fc2, hid, out, 0);
   cs_normalize(out, m->embed);
   free(buf);
   return 0;
}

float cs_cosine(const cs_model *m, const float *a, const float *b) {
   float acc = 0.0f;
   for (int i = 0; i < m->embed; i++)
      acc += a[i] * b[i];
   return acc;
}
