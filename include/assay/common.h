/* Assay plugin ABI: shared conventions, result codes and small value types. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Conventions used in every header of this set.
 *
 * Threads (one tag per function):
 *   [main-thread]  called by the library's plugin-management thread only, never
 *                  concurrently with any other call on the same plugin instance. The host
 *                  keeps one such thread per loaded library (one per generation of a file),
 *                  so [main-thread] functions of one library never overlap each other, while
 *                  another library's may run at the same time.
 *   [job-thread]   called from a job's worker thread. Different jobs run on different
 *                  threads at the same time, so the function must be reentrant for one
 *                  instance (no mutable per-instance state without a lock).
 *   [any-thread]   may be called from any thread at any time, concurrently.
 *   [call-thread]  a host callback: call it only from the thread that is inside the plugin
 *                  function which received it, and only during that call.
 * Ownership: "borrowed" pointers are owned by the caller and valid only during the call;
 *   nothing is ever freed on the other side of the boundary. Strings are UTF-8, NUL-ended.
 * Errors: functions return an assay_result_t; ASSAY_OK is 0 and every failure is negative.
 *   The human-readable reason goes through assay_host_t.report_error (or the log). No C++
 *   exception, longjmp or signal may cross the boundary.
 * Images: 8-bit RGB, rows top to bottom, pixel (x, y) channel c at
 *   pixels[y * stride + x * 3 + c].
 * Latents: float32, one sample = channels * height * width values in CHW order; a batch of
 *   n samples is n consecutive samples.
 * NFE (network function evaluation) is Assay's unit of compute and of budgets:
 *   ONE forward evaluation of a model's velocity for ONE latent sample under ONE condition.
 *   A batch of n samples costs n NFEs; classifier-free guidance with a second condition
 *   (unconditional or negative prompt) costs a second forward, so 2n NFEs per guided step.
 *   The host counts NFEs on every evaluation that passes through it (see ext/model.h and
 *   ext/sampler.h) and refuses the one that would exceed a job's budget. */

/* Result codes. New codes may be added in a minor version; treat unknown negative values
 * as ASSAY_ERR_INTERNAL. */
typedef int32_t assay_result_t;
#define ASSAY_OK 0
#define ASSAY_ERR_INVALID_ARGUMENT (-1) /* a parameter or option is wrong; say which */
#define ASSAY_ERR_BUDGET (-2)           /* the host refused: the job's budget is spent */
#define ASSAY_ERR_CANCELLED (-3)        /* the job was cancelled or its deadline passed */
#define ASSAY_ERR_NO_MEMORY (-4)        /* an allocation failed */
#define ASSAY_ERR_UNSUPPORTED (-5)      /* valid request this plugin cannot serve */
#define ASSAY_ERR_IO (-6)               /* a file the plugin needs is missing or corrupt */
#define ASSAY_ERR_INTERNAL (-7)         /* a bug; the reason says where */

/* Plugin kinds. A descriptor has exactly one kind; its interface is the extension with the
 * matching id (ASSAY_EXT_MODEL, ...). */
typedef uint32_t assay_plugin_kind_t;
#define ASSAY_KIND_UNKNOWN 0u
#define ASSAY_KIND_MODEL 1u
#define ASSAY_KIND_SAMPLER 2u
#define ASSAY_KIND_VERIFIER 3u
#define ASSAY_KIND_REFLECTOR 4u

/* Log severities for assay_host_t.log. */
typedef uint32_t assay_log_level_t;
#define ASSAY_LOG_DEBUG 1u
#define ASSAY_LOG_INFO 2u
#define ASSAY_LOG_WARNING 3u
#define ASSAY_LOG_ERROR 4u

/* One option: a key with a string or a number. Options let plugin configuration grow
 * without ABI changes; a plugin ignores keys it does not know and reports a wrong type or
 * value as ASSAY_ERR_INVALID_ARGUMENT naming the key. */
typedef uint32_t assay_option_type_t;
#define ASSAY_OPTION_UNKNOWN 0u
#define ASSAY_OPTION_STRING 1u
#define ASSAY_OPTION_NUMBER 2u

typedef struct assay_option {
   const char *key;           /* borrowed, never NULL */
   assay_option_type_t type;  /* which of the two fields below is meaningful */
   const char *string;        /* borrowed; NULL unless type == ASSAY_OPTION_STRING */
   double number;             /* 0 unless type == ASSAY_OPTION_NUMBER */
} assay_option_t;

typedef struct assay_options {
   uint32_t count;
   const assay_option_t *items; /* borrowed array of `count`; NULL when count is 0 */
} assay_options_t;

/* An 8-bit RGB image, borrowed for the duration of a call. */
typedef struct assay_image {
   uint32_t width;
   uint32_t height;
   uint32_t stride;         /* bytes per row, >= width * 3 */
   const uint8_t *pixels;   /* borrowed, height * stride bytes */
} assay_image_t;

/* A host-provided sink for text results (JSON documents), one per item of a batch.
 * The host copies the text before `set` returns: the plugin keeps ownership of its buffer. */
typedef struct assay_text_out {
   void *host_data; /* host's; the plugin must not touch it */
   /* [call-thread] Stores `utf8` (borrowed) as the result for batch item `index`. Calling it
    * twice for one index replaces the earlier text. */
   void (*set)(const struct assay_text_out *out, uint32_t index, const char *utf8);
} assay_text_out_t;

/* Exports exactly one symbol from a plugin: put ASSAY_EXPORT on `assay_entry` and build
 * with -fvisibility=hidden (the example plugins also use a linker version script). */
#if defined(__GNUC__) || defined(__clang__)
#define ASSAY_EXPORT __attribute__((visibility("default")))
#else
#define ASSAY_EXPORT
#endif

#ifdef __cplusplus
}
#endif
