/* safetensors.h: a validating reader for .safetensors files.
 *
 * File layout: u64 little-endian N, then N bytes of JSON header, then the data block. The
 * header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
 * relative to the data block) plus an optional "__metadata__" object of string values.
 *
 * st_open checks everything before returning: N against the file size, the JSON (strict
 * parser), each entry's fields and types, dtypes against the caller's allowed set, that
 * end - begin == product(shape) * element size (with overflow checks), that every range
 * lies inside the file, that no two ranges overlap and that names are unique. Any failure
 * gives a message naming the file and the tensor; nothing is ever read out of bounds.
 * A st_file is read-only after st_open: concurrent readers are fine. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "json.h"

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER (100u * 1024u * 1024u) /* what the reference implementation allows */

typedef enum st_dtype { ST_F16 = 1u, ST_F32 = 2u, ST_I32 = 4u, ST_I64 = 8u } st_dtype;

typedef struct st_tensor {
   char *name;            /* owned */
   st_dtype dtype;
   int ndim;
   uint64_t shape[ST_MAX_DIMS];
   uint64_t numel;
   uint64_t begin, end;   /* byte range inside the data block */
} st_tensor;

typedef struct st_file {
   uint8_t *bytes;        /* the whole file, owned */
   size_t size;
   const uint8_t *data;   /* the data block inside `bytes` */
   size_t data_size;
   st_tensor *tensors;    /* sorted by name */
   size_t count;
   sj_value *metadata;    /* "__metadata__" object or NULL; owned */
} st_file;

/* Reads and validates `path`. `allowed` is a mask of st_dtype values. Returns NULL with
 * `err` filled on any problem. */
st_file *st_open(const char *path, unsigned allowed, char *err, size_t errlen);
/* Same, for a file already in memory (`bytes` is copied). `label` names it in messages. */
st_file *st_open_memory(const uint8_t *bytes, size_t size, const char *label, unsigned allowed,
                        char *err, size_t errlen);
void st_close(st_file *f);

const st_tensor *st_find(const st_file *f, const char *name);
/* Metadata string value, or NULL when absent or not a string. */
const char *st_meta(const st_file *f, const char *key);
/* Copies tensor `t` converted to float32 into out[numel] (F16/F32/I32/I64 sources). */
void st_to_f32(const st_file *f, const st_tensor *t, float *out);
const char *st_dtype_name(st_dtype d);

/* IEEE half -> float, exact (subnormals, inf, NaN). */
float st_half_to_float(uint16_t h);
