/* Plugins/shapes/world/json.c: a growable text buffer for JSON output. Numbers are
 * formatted by hand (not printf's %f), so the host's locale can never turn "0.5" into
 * "0,5". */
#include "world.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void sw_buf_init(sw_buf_t *b) {
   b->data = NULL;
   b->len = b->cap = 0;
   b->oom = 0;
}

void sw_buf_free(sw_buf_t *b) {
   free(b->data);
   sw_buf_init(b);
}

static int reserve(sw_buf_t *b, size_t extra) {
   if (b->oom)
      return -1;
   if (b->len + extra + 1 <= b->cap)
      return 0;
   size_t cap = b->cap ? b->cap : 256;
   while (cap < b->len + extra + 1)
      cap *= 2;
   char *grown = realloc(b->data, cap);
   if (grown == NULL) {
      b->oom = 1;
      return -1;
   }
   b->data = grown;
   b->cap = cap;
   return 0;
}

void sw_buf_putn(sw_buf_t *b, const char *text, size_t n) {
   if (reserve(b, n) != 0)
      return;
   memcpy(b->data + b->len, text, n);
   b->len += n;
   b->data[b->len] = '\0';
}

void sw_buf_put(sw_buf_t *b, const char *text) {
   sw_buf_putn(b, text, strlen(text));
}

void sw_buf_int(sw_buf_t *b, long v) {
   char digits[24];
   int n = 0;
   unsigned long u = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;
   do {
      digits[n++] = (char)('0' + u % 10);
      u /= 10;
   } while (u > 0);
   if (v < 0)
      digits[n++] = '-';
   char text[24];
   for (int i = 0; i < n; i++)
      text[i] = digits[n - 1 - i];
   sw_buf_putn(b, text, (size_t)n);
}

void sw_buf_num(sw_buf_t *b, double v, int decimals) {
   if (!isfinite(v)) {
      sw_buf_put(b, "0");
      return;
   }
   if (decimals > 9)
      decimals = 9;
   long scale = 1;
   for (int i = 0; i < decimals; i++)
      scale *= 10;
   const int negative = v < 0;
   double mag = fabs(v);
   if (mag > 1e9) { /* never happens for our scores; keep it integral */
      sw_buf_int(b, (long)v);
      return;
   }
   const long long scaled = llround(mag * (double)scale);
   long long whole = scaled / scale, frac = scaled % scale;
   if (negative && scaled != 0)
      sw_buf_put(b, "-");
   sw_buf_int(b, (long)whole);
   if (frac == 0)
      return;
   char text[12];
   int n = decimals;
   while (frac % 10 == 0) { /* trim trailing zeros */
      frac /= 10;
      n--;
   }
   text[0] = '.';
   for (int i = n; i >= 1; i--) {
      text[i] = (char)('0' + frac % 10);
      frac /= 10;
   }
   sw_buf_putn(b, text, (size_t)n + 1);
}

void sw_buf_str(sw_buf_t *b, const char *text) {
   static const char hex[] = "0123456789abcdef";
   sw_buf_put(b, "\"");
   for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
      char esc[7];
      switch (*p) {
      case '"': sw_buf_put(b, "\\\""); break;
      case '\\': sw_buf_put(b, "\\\\"); break;
      case '\n': sw_buf_put(b, "\\n"); break;
      case '\r': sw_buf_put(b, "\\r"); break;
      case '\t': sw_buf_put(b, "\\t"); break;
      default:
         if (*p < 0x20 || *p == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 15];
            sw_buf_putn(b, esc, 6);
         } else {
            sw_buf_putn(b, (const char *)p, 1);
         }
      }
   }
   sw_buf_put(b, "\"");
}
