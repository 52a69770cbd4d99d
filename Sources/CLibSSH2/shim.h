#ifndef VERS_SWARM_CLIBSSH2_SHIM_H
#define VERS_SWARM_CLIBSSH2_SHIM_H
#include <libssh2.h>

/// The libssh2 version this process runs against.
static inline const char *vs_libssh2_version(void) { return libssh2_version(0); }

#endif
