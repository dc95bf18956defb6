/* json.c: see json.h. */
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sj_parser {
   const unsigned char *p, *end, *start;
   char *err;
   size_t errlen;
   int failed;
} sj_parser;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void sj_error(sj_parser *ps, const char *fmt, ...) {
   if (ps->failed)
      return;
   ps->failed = 1;
   if (ps->err == NULL || ps->errlen == 0)
      return;
   char msg[200];
   va_list ap;
   va_start(ap, fmt);
   vsnprintf(msg, sizeof msg, fmt, ap);
   va_end(ap);
   snprintf(ps->err, ps->errlen, "JSON error at byte %zu: %s", (size_t)(ps->p - ps->start), msg);
}

static void sj_skip_ws(sj_parser *ps) {
   while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
      ps->p++;
}

static void sj_clear(sj_value *v) {
   if (v == NULL)
      return;
   free(v->string);
   if (v->items != NULL)
      for (size_t i = 0; i < v->length; i++)
         sj_clear(&v->items[i]);
   free(v->items);
   if (v->keys != NULL)
      for (size_t i = 0; i < v->length; i++)
         free(v->keys[i]);
   free(v->keys);
   memset(v, 0, sizeof *v);
}

void sj_free(sj_value *v) {
   sj_clear(v);
   free(v);
}

/* Appends code point cp as UTF-8. */
static size_t sj_put_utf8(unsigned char *o, uint32_t cp) {
   if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
   if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | cp >> 6); o[1] = (unsigned char)(0x80 | (cp & 0x3F)); return 2; }
   if (cp < 0x10000) {
      o[0] = (unsigned char)(0xE0 | cp >> 12); o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
      o[2] = (unsigned char)(0x80 | (cp & 0x3F)); return 3;
   }
   o[0] = (unsigned char)(0xF0 | cp >> 18); o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
   o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F)); o[3] = (unsigned char)(0x80 | (cp & 0x3F));
   return 4;
}

static int sj_hex4(sj_parser *ps, uint32_t *out) {
   if (ps->end - ps->p < 4) { sj_error(ps, "truncated \\u escape"); return 0; }
   uint32_t v = 0;
   for (int i = 0; i < 4; i++) {
      unsigned c = ps->p[i];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else { sj_error(ps, "bad hex digit in \\u escape"); return 0; }
   }
   ps->p += 4;
   *out = v;
   return 1;
}

/* Length of a valid UTF-8 sequence starting at p (1..4), or 0 if invalid. */
static size_t sj_utf8_len(const unsigned char *p, const unsigned char *end) {
   unsigned c = p[0];
   size_t n;
   uint32_t cp, min;
   if (c < 0x80) return 1;
   if ((c & 0xE0) == 0xC0) { n = 2; cp = c & 0x1F; min = 0x80; }
   else if ((c & 0xF0) == 0xE0) { n = 3; cp = c & 0x0F; min = 0x800; }
   else if ((c & 0xF8) == 0xF0) { n = 4; cp = c & 0x07; min = 0x10000; }
   else return 0;
   if ((size_t)(end - p) < n) return 0;
   for (size_t i = 1; i < n; i++) {
      if ((p[i] & 0xC0) != 0x80) return 0;
      cp = cp << 6 | (p[i] & 0x3F);
   }
   if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
   return n;
}

/* Parses a string starting at the opening quote. Returns owned text, or NULL. */
static char *sj_parse_string(sj_parser *ps, size_t *out_len) {
   ps->p++; /* opening quote */
   /* The decoded form is never longer than the encoded one. */
   const unsigned char *q = ps->p;
   while (q < ps->end && *q != '"') {
      if (*q == '\\' && ps->end - q > 1)
         q++;
      q++;
   }
   if (q >= ps->end) { sj_error(ps, "unterminated string"); return NULL; }
   unsigned char *buf = malloc((size_t)(q - ps->p) + 1);
   if (buf == NULL) { sj_error(ps, "out of memory"); return NULL; }
   size_t n = 0;
   while (ps->p < ps->end && *ps->p != '"') {
      unsigned c = *ps->p;
      if (c < 0x20) { sj_error(ps, "control character in string"); free(buf); return NULL; }
      if (c == '\\') {
         ps->p++;
         if (ps->p >= ps->end) { sj_error(ps, "truncated escape"); free(buf); return NULL; }
         c = *ps->p++;
         switch (c) {
         case '"': buf[n++] = '"'; break;
         case '\\': buf[n++] = '\\'; break;
         case '/': buf[n++] = '/'; break;
         case 'b': buf[n++] = '\b'; break;
         case 'f': buf[n++] = '\f'; break;
         case 'n': buf[n++] = '\n'; break;
         case 'r': buf[n++] = '\r'; break;
         case 't': buf[n++] = '\t'; break;
         case 'u': {
            uint32_t cp;
            if (!sj_hex4(ps, &cp)) { free(buf); return NULL; }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
               uint32_t lo;
               if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                  sj_error(ps, "unpaired surrogate in \\u escape"); free(buf); return NULL;
               }
               ps->p += 2;
               if (!sj_hex4(ps, &lo)) { free(buf); return NULL; }
               if (lo < 0xDC00 || lo > 0xDFFF) { sj_error(ps, "bad low surrogate"); free(buf); return NULL; }
               cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
               sj_error(ps, "unpaired low surrogate"); free(buf); return NULL;
            }
            if (cp == 0) { sj_error(ps, "\\u0000 is not allowed"); free(buf); return NULL; }
            /* 6 escaped bytes (\uXXXX) give at most 3 bytes, 12 give 4: fits. */
            n += sj_put_utf8(buf + n, cp);
            break;
         }
         default: sj_error(ps, "bad escape \\%c", (int)c); free(buf); return NULL;
         }
      } else {
         size_t k = sj_utf8_len(ps->p, ps->end);
         if (k == 0) { sj_error(ps, "invalid UTF-8 in string"); free(buf); return NULL; }
         memcpy(buf + n, ps->p, k);
         n += k;
         ps->p += k;
      }
   }
   if (ps->p >= ps->end) { sj_error(ps, "unterminated string"); free(buf); return NULL; }
   ps->p++; /* closing quote */
   buf[n] = 0;
   *out_len = n;
   return (char *)buf;
}

static int sj_parse_number(sj_parser *ps, sj_value *v) {
   const unsigned char *s = ps->p;
   int neg = 0, simple = 1;
   if (ps->p < ps->end && *ps->p == '-') { neg = 1; simple = 0; ps->p++; }
   if (ps->p >= ps->end || !(*ps->p >= '0' && *ps->p <= '9')) { sj_error(ps, "bad number"); return 0; }
   double mant = 0.0;
   uint64_t u = 0;
   int overflow = 0;
   if (*ps->p == '0') {
      ps->p++;
   } else {
      while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
         unsigned d = *ps->p++ - '0';
         if (u > (UINT64_MAX - d) / 10) overflow = 1; else u = u * 10 + d;
         mant = mant * 10.0 + d;
      }
   }
   int exp10 = 0;
   if (ps->p < ps->end && *ps->p == '.') {
      simple = 0;
      ps->p++;
      if (ps->p >= ps->end || !(*ps->p >= '0' && *ps->p <= '9')) { sj_error(ps, "bad fraction"); return 0; }
      while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
         if (exp10 > -400) { mant = mant * 10.0 + (*ps->p - '0'); exp10--; }
         ps->p++;
      }
   }
   if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
      simple = 0;
      ps->p++;
      int eneg = 0, e = 0;
      if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) { eneg = *ps->p == '-'; ps->p++; }
      if (ps->p >= ps->end || !(*ps->p >= '0' && *ps->p <= '9')) { sj_error(ps, "bad exponent"); return 0; }
      while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
         if (e < 10000) e = e * 10 + (*ps->p - '0');
         ps->p++;
      }
      exp10 += eneg ? -e : e;
   }
   /* Locale-independent conversion (strtod would follow the process locale). */
   double scale = 1.0, base = 10.0;
   int ae = exp10 < 0 ? -exp10 : exp10;
   while (ae > 0) { if (ae & 1) scale *= base; base *= base; ae >>= 1; }
   mant = exp10 < 0 ? mant / scale : mant * scale;
   v->type = SJ_NUMBER;
   v->number = neg ? -mant : mant;
   v->is_uint = simple && !overflow;
   v->uint_value = simple && !overflow ? u : 0;
   (void)s;
   return 1;
}

static int sj_parse_value(sj_parser *ps, sj_value *v, int depth);

static int sj_literal(sj_parser *ps, const char *lit) {
   size_t n = strlen(lit);
   if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n) != 0) {
      sj_error(ps, "unexpected character '%c'", (int)*ps->p);
      return 0;
   }
   ps->p += n;
   return 1;
}

static int sj_parse_container(sj_parser *ps, sj_value *v, int depth, int object) {
   ps->p++; /* [ or { */
   v->type = object ? SJ_OBJECT : SJ_ARRAY;
   size_t cap = 0;
   sj_skip_ws(ps);
   if (ps->p < ps->end && *ps->p == (object ? '}' : ']')) { ps->p++; return 1; }
   for (;;) {
      if (v->length == cap) {
         size_t ncap = cap ? cap * 2 : 8;
         sj_value *items = realloc(v->items, ncap * sizeof *items);
         if (items == NULL) { sj_error(ps, "out of memory"); return 0; }
         v->items = items;
         if (object) {
            char **keys = realloc(v->keys, ncap * sizeof *keys);
            if (keys == NULL) { sj_error(ps, "out of memory"); return 0; }
            v->keys = keys;
         }
         cap = ncap;
      }
      sj_skip_ws(ps);
      if (object) {
         if (ps->p >= ps->end || *ps->p != '"') { sj_error(ps, "expected a string key"); return 0; }
         size_t klen;
         char *key = sj_parse_string(ps, &klen);
         if (key == NULL) return 0;
         v->keys[v->length] = key;
         memset(&v->items[v->length], 0, sizeof v->items[0]);
         v->length++; /* owned from here on, even if the value fails */
         sj_skip_ws(ps);
         if (ps->p >= ps->end || *ps->p != ':') { sj_error(ps, "expected ':'"); return 0; }
         ps->p++;
         if (!sj_parse_value(ps, &v->items[v->length - 1], depth + 1)) return 0;
      } else {
         memset(&v->items[v->length], 0, sizeof v->items[0]);
         v->length++;
         if (!sj_parse_value(ps, &v->items[v->length - 1], depth + 1)) return 0;
      }
      sj_skip_ws(ps);
      if (ps->p >= ps->end) { sj_error(ps, "unterminated %s", object ? "object" : "array"); return 0; }
      if (*ps->p == ',') { ps->p++; continue; }
      if (*ps->p == (object ? '}' : ']')) { ps->p++; return 1; }
      sj_error(ps, "expected ',' or '%c'", object ? '}' : ']');
      return 0;
   }
}

static int sj_parse_value(sj_parser *ps, sj_value *v, int depth) {
   if (depth > SJ_MAX_DEPTH) { sj_error(ps, "nesting deeper than %d", SJ_MAX_DEPTH); return 0; }
   sj_skip_ws(ps);
   if (ps->p >= ps->end) { sj_error(ps, "unexpected end of text"); return 0; }
   switch (*ps->p) {
   case '{': return sj_parse_container(ps, v, depth, 1);
   case '[': return sj_parse_container(ps, v, depth, 0);
   case '"': {
      size_t n;
      char *s = sj_parse_string(ps, &n);
      if (s == NULL) return 0;
      v->type = SJ_STRING;
      v->string = s;
      v->length = n;
      return 1;
   }
   case 't': v->type = SJ_BOOL; v->boolean = 1; return sj_literal(ps, "true");
   case 'f': v->type = SJ_BOOL; v->boolean = 0; return sj_literal(ps, "false");
   case 'n': v->type = SJ_NULL; return sj_literal(ps, "null");
   default:
      if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
         return sj_parse_number(ps, v);
      sj_error(ps, "unexpected character 0x%02x", (unsigned)*ps->p);
      return 0;
   }
}

sj_value *sj_parse(const char *text, size_t len, char *err, size_t errlen) {
   sj_parser ps = {(const unsigned char *)text, (const unsigned char *)text + len,
                   (const unsigned char *)text, err, errlen, 0};
   if (err != NULL && errlen > 0)
      err[0] = 0;
   sj_value *v = calloc(1, sizeof *v);
   if (v == NULL) {
      if (err != NULL && errlen > 0) snprintf(err, errlen, "out of memory");
      return NULL;
   }
   if (text == NULL) { sj_error(&ps, "no text"); free(v); return NULL; }
   if (!sj_parse_value(&ps, v, 0)) { sj_free(v); return NULL; }
   sj_skip_ws(&ps);
   if (ps.p != ps.end) { sj_error(&ps, "trailing characters after the JSON value"); sj_free(v); return NULL; }
   return v;
}

const sj_value *sj_get(const sj_value *obj, const char *key) {
   if (obj == NULL || obj->type != SJ_OBJECT || key == NULL)
      return NULL;
   for (size_t i = 0; i < obj->length; i++)
      if (strcmp(obj->keys[i], key) == 0)
         return &obj->items[i];
   return NULL;
}
