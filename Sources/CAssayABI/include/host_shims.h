/* Host-side helpers Swift cannot reach through Glibc (GNU-only or variadic functions).
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
/* prctl(PR_SET_PDEATHSIG, sig): the calling process gets `sig` when its parent dies. */
int assay_host_die_with_parent(int sig);

#ifdef __cplusplus
}
#endif
