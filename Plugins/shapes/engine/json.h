/* json.h: a small, careful JSON parser for safetensors headers and their metadata.
 *
 * Strict RFC 8259 grammar (no comments, no trailing commas, no NaN), UTF-8 checked, nesting
 * limited to SJ_MAX_DEPTH, strings with \u escapes (surrogate pairs joined; \u0000 refused).
 * Every failure returns NULL with a message naming the byte offset. Never reads past `len`.
 * Thread-safe: no global state. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SJ_MAX_DEPTH 64

typedef enum sj_type { SJ_NULL, SJ_BOOL, SJ_NUMBER, SJ_STRING, SJ_ARRAY, SJ_OBJECT } sj_type;

typedef struct sj_value {
   sj_type type;
   int boolean;           /* SJ_BOOL */
   double number;         /* SJ_NUMBER (approximate for non-integers) */
   int is_uint;           /* SJ_NUMBER written as digits only (no sign, '.', exponent) ... */
   uint64_t uint_value;   /* ... and fits in 64 bits: its exact value */
   char *string;          /* SJ_STRING: owned, NUL-terminated UTF-8 (no embedded NUL) */
   size_t length;         /* SJ_STRING: bytes; SJ_ARRAY / SJ_OBJECT: number of items */
   struct sj_value *items; /* SJ_ARRAY / SJ_OBJECT: owned array of `length` values */
   char **keys;           /* SJ_OBJECT: owned array of `length` keys (order of the text) */
} sj_value;

/* Parses exactly one JSON value spanning text[0..len) (surrounding whitespace allowed).
 * Returns an owned tree (free with sj_free) or NULL with `err` filled. */
sj_value *sj_parse(const char *text, size_t len, char *err, size_t errlen);
void sj_free(sj_value *v);

/* Member `key` of an object (first match), or NULL (also when `obj` is not an object). */
const sj_value *sj_get(const sj_value *obj, const char *key);
