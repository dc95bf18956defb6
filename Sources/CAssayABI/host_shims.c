/* Host-side helpers (include/host_shims.h): GNU-only calls Swift cannot make. */
#define _GNU_SOURCE 1
#include <fcntl.h>
#include <sys/mman.h>

#include "include/host_shims.h"

int assay_host_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING); }

int assay_host_seal(int fd) {
   return fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
}

int assay_host_is_sealed(int fd) {
   int want = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
   int seals = fcntl(fd, F_GET_SEALS);
   return seals >= 0 && (seals & want) == want;
}

int assay_host_seal_size(int fd) { return fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL); }

int assay_host_is_size_sealed(int fd) {
   int want = F_SEAL_SHRINK | F_SEAL_GROW;
   int seals = fcntl(fd, F_GET_SEALS);
   return seals >= 0 && (seals & want) == want;
}
