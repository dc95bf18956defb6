/* Assay plugin ABI: what the host gives a plugin. */
#pragma once

#include <stdbool.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct assay_host assay_host_t;

/* The context of one host-initiated call into a plugin (one model evaluation, one sampler
 * run, one verification...). It exists because a plugin instance is shared by many jobs at
 * once: cancellation, log attribution and error reports belong to the call, not to the
 * instance. Owned by the host, borrowed by the plugin for the duration of that call only. */
typedef struct assay_call {
   const assay_host_t *host; /* the host that made the call; same as given at creation */
   uint64_t job_id;          /* the job this call serves; 0 when it serves no job */
   void *host_data;          /* host's; the plugin must not touch it */
} assay_call_t;

/* Given to the factory's `create`; valid until the plugin instance is destroyed. */
struct assay_host {
   assay_version_t abi_version; /* the host's ABI version */
   void *host_data;             /* host's; the plugin must not touch it */
   const char *name;            /* borrowed for the instance's life, e.g. "assayd" */
   const char *version;         /* borrowed for the instance's life, e.g. "0.1.0" */

   /* [any-thread] Returns the host extension with this id ("assay.something/1"), or NULL if
    * the host does not have it. The returned struct is owned by the host and lives as long
    * as the plugin instance. */
   const void *(*get_extension)(const assay_host_t *host, const char *id);

   /* [any-thread] Writes one line to the daemon's log. `call` may be NULL (instance-level
    * message); with a call, the line is attributed to its job. `message` is borrowed. */
   void (*log)(const assay_host_t *host, const assay_call_t *call, assay_log_level_t level,
               const char *message);

   /* [call-thread] True once the job behind `call` is cancelled or past its deadline: a
    * long-running function should poll it and return ASSAY_ERR_CANCELLED. Cheap (an atomic
    * load); fine to call between every row of work. */
   bool (*is_cancelled)(const assay_host_t *host, const assay_call_t *call);

   /* [call-thread] or [main-thread] Gives the reason for the failure the plugin is about
    * to return from the current call. `message` (borrowed) should tell the user what to
    * fix. The host copies it; the last report before returning wins. Pass call = NULL from
    * a [main-thread] function that has no call (plugin init): the reason is then shown as
    * the plugin's refusal reason. */
   void (*report_error)(const assay_host_t *host, const assay_call_t *call,
                        const char *message);
};

#ifdef __cplusplus
}
#endif
