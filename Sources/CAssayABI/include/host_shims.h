/* Host-side helpers Swift cannot reach through Glibc (GNU-only functions).
 * Not part of the plugin ABI: the daemon's own use only. */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

/* memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING); -1 and errno on failure. */
int assay_host_memfd(const char *name);
/* Seals a memfd against shrinking, growing, writing and further seals; 0 or -1. */
int assay_host_seal(int fd);
/* 1 when the memfd is sealed against shrinking, growing and writing, else 0. */
int assay_host_is_sealed(int fd);
/* Seals a memfd's size (no shrink, no grow, no further seals), writes still allowed: a
 * shared arena both sides map and neither can make shorter under the other. 0 or -1. */
int assay_host_seal_size(int fd);
/* 1 when the memfd's size is sealed (no shrink, no grow), else 0. */
int assay_host_is_size_sealed(int fd);

#ifdef __cplusplus
}
#endif
