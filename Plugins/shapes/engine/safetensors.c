/* safetensors.c: see safetensors.h. */
#define _POSIX_C_SOURCE 200809L
#include "safetensors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void st_err(char *err, size_t errlen, const char *fmt, ...) {
   if (err == NULL || errlen == 0)
      return;
   va_list ap;
   va_start(ap, fmt);
   vsnprintf(err, errlen, fmt, ap);
   va_end(ap);
}

const char *st_dtype_name(st_dtype d) {
   switch (d) {
   case ST_F16: return "F16";
   case ST_F32: return "F32";
   case ST_I32: return "I32";
   case ST_I64: return "I64";
   }
   return "?";
}

static size_t st_dtype_size(st_dtype d) {
   switch (d) {
   case ST_F16: return 2;
   case ST_F32: case ST_I32: return 4;
   case ST_I64: return 8;
   }
   return 0;
}

float st_half_to_float(uint16_t h) {
   uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu, bits;
   if (exp == 0x1F) {
      bits = sign | 0x7F800000u | (man << 13);
   } else if (exp != 0) {
      bits = sign | ((exp + 112u) << 23) | (man << 13);
   } else if (man == 0) {
      bits = sign;
   } else { /* subnormal: normalise */
      int e = -1;
      do { man <<= 1; e++; } while ((man & 0x400u) == 0);
      man &= 0x3FFu;
      bits = sign | ((uint32_t)(112 - e) << 23) | (man << 13);
   }
   float f;
   memcpy(&f, &bits, sizeof f);
   return f;
}

void st_close(st_file *f) {
   if (f == NULL)
      return;
   for (size_t i = 0; i < f->count; i++)
      free(f->tensors[i].name);
   free(f->tensors);
   sj_free(f->metadata);
   free(f->bytes);
   free(f);
}

static int st_cmp_name(const void *a, const void *b) {
   return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

typedef struct st_range { uint64_t begin, end; size_t index; } st_range;

static int st_cmp_range(const void *a, const void *b) {
   const st_range *x = a, *y = b;
   if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
   if (x->end != y->end) return x->end < y->end ? -1 : 1;
   return 0;
}

/* Takes ownership of `bytes`. */
static st_file *st_parse(uint8_t *bytes, size_t size, const char *label, unsigned allowed,
                         char *err, size_t errlen) {
   st_file *f = calloc(1, sizeof *f);
   if (f == NULL) { free(bytes); st_err(err, errlen, "%s: out of memory", label); return NULL; }
   f->bytes = bytes;
   f->size = size;
   if (size < 8) {
      st_err(err, errlen, "%s: file is %zu bytes, too short for a safetensors header (truncated?)", label, size);
      goto fail;
   }
   uint64_t n = 0;
   for (int i = 7; i >= 0; i--)
      n = n << 8 | bytes[i];
   if (n < 2 || n > ST_MAX_HEADER || n > size - 8) {
      st_err(err, errlen, "%s: header length %llu is impossible for a file of %zu bytes "
             "(corrupt or truncated file, or not a safetensors file)", label, (unsigned long long)n, size);
      goto fail;
   }
   const char *header = (const char *)bytes + 8;
   if (header[0] != '{') {
      st_err(err, errlen, "%s: the header does not start with '{' (not a safetensors file?)", label);
      goto fail;
   }
   char jerr[256];
   sj_value *root = sj_parse(header, (size_t)n, jerr, sizeof jerr);
   if (root == NULL) {
      st_err(err, errlen, "%s: bad JSON header: %s", label, jerr);
      goto fail;
   }
   f->data = bytes + 8 + n;
   f->data_size = size - 8 - (size_t)n;
   if (root->type != SJ_OBJECT) {
      st_err(err, errlen, "%s: the header is not a JSON object", label);
      sj_free(root);
      goto fail;
   }
   f->tensors = calloc(root->length ? root->length : 1, sizeof *f->tensors);
   if (f->tensors == NULL) { sj_free(root); st_err(err, errlen, "%s: out of memory", label); goto fail; }
   for (size_t i = 0; i < root->length; i++) {
      const char *name = root->keys[i];
      const sj_value *e = &root->items[i];
      if (strcmp(name, "__metadata__") == 0) {
         if (f->metadata != NULL) { st_err(err, errlen, "%s: two \"__metadata__\" entries", label); sj_free(root); goto fail; }
         if (e->type != SJ_OBJECT) { st_err(err, errlen, "%s: \"__metadata__\" is not an object", label); sj_free(root); goto fail; }
         for (size_t k = 0; k < e->length; k++)
            if (e->items[k].type != SJ_STRING) {
               st_err(err, errlen, "%s: metadata \"%s\" is not a string", label, e->keys[k]);
               sj_free(root);
               goto fail;
            }
         /* Move the metadata object out of the tree. */
         sj_value *m = malloc(sizeof *m);
         if (m == NULL) { sj_free(root); st_err(err, errlen, "%s: out of memory", label); goto fail; }
         *m = root->items[i];
         memset(&root->items[i], 0, sizeof root->items[i]);
         f->metadata = m;
         continue;
      }
      st_tensor *t = &f->tensors[f->count];
      if (e->type != SJ_OBJECT) { st_err(err, errlen, "%s: tensor \"%s\": entry is not an object", label, name); sj_free(root); goto fail; }
      const sj_value *dt = sj_get(e, "dtype"), *sh = sj_get(e, "shape"), *off = sj_get(e, "data_offsets");
      if (dt == NULL || dt->type != SJ_STRING || sh == NULL || sh->type != SJ_ARRAY || off == NULL ||
          off->type != SJ_ARRAY) {
         st_err(err, errlen, "%s: tensor \"%s\": needs \"dtype\" (string), \"shape\" (array) and "
                "\"data_offsets\" (array)", label, name);
         sj_free(root);
         goto fail;
      }
      st_dtype d;
      if (strcmp(dt->string, "F16") == 0) d = ST_F16;
      else if (strcmp(dt->string, "F32") == 0) d = ST_F32;
      else if (strcmp(dt->string, "I32") == 0) d = ST_I32;
      else if (strcmp(dt->string, "I64") == 0) d = ST_I64;
      else d = 0;
      if (d == 0 || (allowed & d) == 0) {
         char list[32] = "";
         const st_dtype all[] = {ST_F16, ST_F32, ST_I32, ST_I64};
         for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
            if (allowed & all[k]) {
               if (list[0]) strcat(list, "/");
               strcat(list, st_dtype_name(all[k]));
            }
         st_err(err, errlen, "%s: tensor \"%s\" has dtype %.20s; only %s are supported here",
                label, name, dt->string, list);
         sj_free(root);
         goto fail;
      }
      if (sh->length > ST_MAX_DIMS) {
         st_err(err, errlen, "%s: tensor \"%s\" has %zu dimensions (max %d)", label, name, sh->length, ST_MAX_DIMS);
         sj_free(root);
         goto fail;
      }
      uint64_t numel = 1;
      int overflow = 0;
      for (size_t k = 0; k < sh->length; k++) {
         const sj_value *dim = &sh->items[k];
         if (dim->type != SJ_NUMBER || !dim->is_uint) {
            st_err(err, errlen, "%s: tensor \"%s\": shape entry %zu is not a non-negative integer", label, name, k);
            sj_free(root);
            goto fail;
         }
         t->shape[k] = dim->uint_value;
         if (dim->uint_value != 0 && numel > UINT64_MAX / dim->uint_value) overflow = 1;
         else numel *= dim->uint_value;
      }
      if (off->length != 2 || off->items[0].type != SJ_NUMBER || !off->items[0].is_uint ||
          off->items[1].type != SJ_NUMBER || !off->items[1].is_uint) {
         st_err(err, errlen, "%s: tensor \"%s\": data_offsets must be two non-negative integers", label, name);
         sj_free(root);
         goto fail;
      }
      t->begin = off->items[0].uint_value;
      t->end = off->items[1].uint_value;
      size_t es = st_dtype_size(d);
      if (overflow || numel > UINT64_MAX / es) {
         st_err(err, errlen, "%s: tensor \"%s\": shape is absurdly large", label, name);
         sj_free(root);
         goto fail;
      }
      if (t->end < t->begin || t->end - t->begin != numel * es) {
         st_err(err, errlen, "%s: tensor \"%s\": data_offsets [%llu, %llu] do not hold %llu %s values",
                label, name, (unsigned long long)t->begin, (unsigned long long)t->end,
                (unsigned long long)numel, st_dtype_name(d));
         sj_free(root);
         goto fail;
      }
      if (t->end > f->data_size) {
         st_err(err, errlen, "%s: tensor \"%s\": data [%llu, %llu) lies past the end of the file "
                "(data block is %zu bytes): the file is truncated or corrupt",
                label, name, (unsigned long long)t->begin, (unsigned long long)t->end, f->data_size);
         sj_free(root);
         goto fail;
      }
      t->name = malloc(strlen(name) + 1);
      if (t->name == NULL) { sj_free(root); st_err(err, errlen, "%s: out of memory", label); goto fail; }
      strcpy(t->name, name);
      t->dtype = d;
      t->ndim = (int)sh->length;
      t->numel = numel;
      f->count++;
   }
   sj_free(root);
   qsort(f->tensors, f->count, sizeof *f->tensors, st_cmp_name);
   for (size_t i = 1; i < f->count; i++)
      if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0) {
         st_err(err, errlen, "%s: tensor \"%s\" appears twice in the header", label, f->tensors[i].name);
         goto fail;
      }
   if (f->count > 0) {
      st_range *r = malloc(f->count * sizeof *r);
      if (r == NULL) { st_err(err, errlen, "%s: out of memory", label); goto fail; }
      for (size_t i = 0; i < f->count; i++)
         r[i] = (st_range){f->tensors[i].begin, f->tensors[i].end, i};
      qsort(r, f->count, sizeof *r, st_cmp_range);
      for (size_t i = 1; i < f->count; i++) {
         /* Empty tensors occupy no bytes and cannot overlap anything. */
         if (r[i].begin == r[i].end || r[i - 1].begin == r[i - 1].end)
            continue;
         if (r[i].begin < r[i - 1].end) {
            st_err(err, errlen, "%s: tensors \"%s\" and \"%s\" overlap in the data block (corrupt header)",
                   label, f->tensors[r[i - 1].index].name, f->tensors[r[i].index].name);
            free(r);
            goto fail;
         }
      }
      free(r);
   }
   return f;
fail:
   st_close(f);
   return NULL;
}

st_file *st_open_memory(const uint8_t *bytes, size_t size, const char *label, unsigned allowed,
                        char *err, size_t errlen) {
   uint8_t *copy = malloc(size ? size : 1);
   if (copy == NULL) { st_err(err, errlen, "%s: out of memory", label); return NULL; }
   if (size)
      memcpy(copy, bytes, size);
   return st_parse(copy, size, label, allowed, err, errlen);
}

st_file *st_open(const char *path, unsigned allowed, char *err, size_t errlen) {
   if (path == NULL) { st_err(err, errlen, "no file name"); return NULL; }
   FILE *fp = fopen(path, "rb");
   if (fp == NULL) {
      st_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
      return NULL;
   }
   struct stat sb;
   if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
      st_err(err, errlen, "%s: not a regular file", path);
      fclose(fp);
      return NULL;
   }
   if ((uint64_t)sb.st_size > (uint64_t)4 << 30) {
      st_err(err, errlen, "%s: file is %lld bytes; refusing files over 4 GiB", path, (long long)sb.st_size);
      fclose(fp);
      return NULL;
   }
   size_t size = (size_t)sb.st_size;
   uint8_t *bytes = malloc(size ? size : 1);
   if (bytes == NULL) { st_err(err, errlen, "%s: out of memory (%zu bytes)", path, size); fclose(fp); return NULL; }
   size_t got = size ? fread(bytes, 1, size, fp) : 0;
   int extra = fgetc(fp); /* the file may have grown or shrunk since fstat */
   fclose(fp);
   if (got != size || extra != EOF) {
      st_err(err, errlen, "%s: the file changed while being read (is it being written right now?)", path);
      free(bytes);
      return NULL;
   }
   return st_parse(bytes, size, path, allowed, err, errlen);
}

const st_tensor *st_find(const st_file *f, const char *name) {
   size_t lo = 0, hi = f->count;
   while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      int c = strcmp(f->tensors[mid].name, name);
      if (c == 0) return &f->tensors[mid];
      if (c < 0) lo = mid + 1; else hi = mid;
   }
   return NULL;
}

const char *st_meta(const st_file *f, const char *key) {
   const sj_value *v = sj_get(f->metadata, key);
   return v != NULL && v->type == SJ_STRING ? v->string : NULL;
}

void st_to_f32(const st_file *f, const st_tensor *t, float *out) {
   const uint8_t *p = f->data + t->begin;
   for (uint64_t i = 0; i < t->numel; i++) {
      switch (t->dtype) {
      case ST_F16: out[i] = st_half_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8)); break;
      case ST_F32: {
         uint32_t b = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                      (uint32_t)p[4 * i + 3] << 24;
         memcpy(&out[i], &b, sizeof b);
         break;
      }
      case ST_I32: {
         uint32_t b = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                      (uint32_t)p[4 * i + 3] << 24;
         int32_t s;
         memcpy(&s, &b, sizeof s);
         out[i] = (float)s;
         break;
      }
      case ST_I64: {
         uint64_t b = 0;
         for (int k = 7; k >= 0; k--) b = b << 8 | p[8 * i + (uint64_t)k];
         int64_t s;
         memcpy(&s, &b, sizeof s);
         out[i] = (float)s;
         break;
      }
      }
   }
}
