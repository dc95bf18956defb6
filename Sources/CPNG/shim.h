#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Decoding a PNG held in memory into 8-bit RGB, with libpng's errors caught here: libpng
 * reports errors by longjmp, which Swift cannot catch (it has no setjmp), so the setjmp
 * lives in this C function and Swift only ever sees a return value and a message.
 *
 * Any 8-bit or 16-bit gray, gray+alpha, palette, RGB or RGBA image becomes RGB8: palette
 * and low-bit gray are expanded, 16-bit is stripped to 8, gray is copied to three
 * channels, and alpha is dropped (not composited). Interlaced images are handled. */

typedef struct assay_png_reader {
   const unsigned char *data;
   size_t size;
   size_t offset;
} assay_png_reader_t;

typedef struct assay_png_failure {
   char message[256];
} assay_png_failure_t;

static inline void assay_png_read_fn(png_structp png, png_bytep out, png_size_t length) {
   assay_png_reader_t *r = (assay_png_reader_t *)png_get_io_ptr(png);
   if (r == NULL || length > r->size - r->offset) {
      png_error(png, "the PNG data ends early (truncated)");
      return;
   }
   memcpy(out, r->data + r->offset, length);
   r->offset += length;
}

static inline void assay_png_error_fn(png_structp png, png_const_charp message) {
   assay_png_failure_t *f = (assay_png_failure_t *)png_get_error_ptr(png);
   if (f != NULL && f->message[0] == 0) {
      strncpy(f->message, message != NULL ? message : "libpng error", sizeof f->message - 1);
      f->message[sizeof f->message - 1] = 0;
   }
   png_longjmp(png, 1);
}

static inline void assay_png_warning_fn(png_structp png, png_const_charp message) {
   (void)png;
   (void)message;
}

/* Decodes `size` bytes at `data`. On success returns 0, sets *width and *height and
 * *pixels to a malloc'ed width*height*3 buffer (the caller frees it with free()). On
 * failure returns -1, *pixels is NULL and `error` (error_size bytes, NUL-ended) says why.
 * Images larger than max_side a side or max_pixels in all are refused before any pixel
 * buffer is allocated. */
static inline int assay_png_decode_rgb8(const unsigned char *data, size_t size, uint32_t max_side,
                                        uint64_t max_pixels, uint32_t *width, uint32_t *height,
                                        unsigned char **pixels, char *error, size_t error_size) {
   assay_png_reader_t reader = {data, size, 0};
   assay_png_failure_t failure;
   memset(&failure, 0, sizeof failure);
   /* Everything that setjmp's return path reads is volatile (C11 7.13.2.1). */
   png_structp volatile png = NULL;
   png_infop volatile info = NULL;
   unsigned char *volatile buffer = NULL;
   png_bytep *volatile rows = NULL;
   *pixels = NULL;
   *width = 0;
   *height = 0;
   if (error != NULL && error_size > 0) error[0] = 0;

   if (size < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
      if (error != NULL) snprintf(error, error_size, "not a PNG (no PNG signature in the first 8 bytes)");
      return -1;
   }
   png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &failure, assay_png_error_fn, assay_png_warning_fn);
   if (png == NULL) {
      if (error != NULL) snprintf(error, error_size, "out of memory starting libpng");
      return -1;
   }
   info = png_create_info_struct(png);
   if (info == NULL) {
      png_structp p = png;
      png_destroy_read_struct(&p, NULL, NULL);
      if (error != NULL) snprintf(error, error_size, "out of memory starting libpng");
      return -1;
   }
   if (setjmp(png_jmpbuf(png))) {
      png_structp p = png;
      png_infop i = info;
      png_destroy_read_struct(&p, &i, NULL);
      free(rows);
      free(buffer);
      if (error != NULL)
         snprintf(error, error_size, "invalid PNG: %s", failure.message[0] ? failure.message : "libpng error");
      return -1;
   }
   png_set_user_limits(png, max_side, max_side);
   png_set_chunk_malloc_max(png, 8u << 20);
   png_set_read_fn(png, &reader, assay_png_read_fn);
   png_read_info(png, info);

   png_uint_32 w = 0, h = 0;
   int depth = 0, color = 0, interlace = 0;
   png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, NULL, NULL);
   if (w == 0 || h == 0 || (uint64_t)w * h > max_pixels) {
      snprintf(failure.message, sizeof failure.message, "the image is %ux%u; at most %llu pixels are accepted",
               (unsigned)w, (unsigned)h, (unsigned long long)max_pixels);
      png_longjmp(png, 1);
   }
   png_set_expand(png);                 /* palette -> RGB, gray < 8 bits -> 8, tRNS -> alpha */
   png_set_strip_16(png);               /* 16-bit -> 8-bit */
   png_set_strip_alpha(png);            /* drop alpha */
   png_set_gray_to_rgb(png);
   png_set_interlace_handling(png);
   png_read_update_info(png, info);
   if (png_get_rowbytes(png, info) != (size_t)w * 3 || png_get_channels(png, info) != 3 ||
       png_get_bit_depth(png, info) != 8) {
      snprintf(failure.message, sizeof failure.message, "unsupported PNG layout (colour type %d, %d bits)", color, depth);
      png_longjmp(png, 1);
   }
   buffer = (unsigned char *)malloc((size_t)w * h * 3);
   rows = (png_bytep *)malloc(sizeof(png_bytep) * h);
   if (buffer == NULL || rows == NULL) {
      snprintf(failure.message, sizeof failure.message, "out of memory for a %ux%u image", (unsigned)w, (unsigned)h);
      png_longjmp(png, 1);
   }
   for (png_uint_32 y = 0; y < h; y++) rows[y] = buffer + (size_t)y * w * 3;
   png_read_image(png, rows);
   png_read_end(png, NULL);

   png_structp p = png;
   png_infop i = info;
   png_destroy_read_struct(&p, &i, NULL);
   free(rows);
   *pixels = buffer;
   *width = (uint32_t)w;
   *height = (uint32_t)h;
   return 0;
}
