#ifndef VERS_SWARM_CLIBSSH2_SHIM_H
#define VERS_SWARM_CLIBSSH2_SHIM_H
#include <string.h>
#include <libssh2.h>

/* Typed wrappers for libssh2's function-like macros and void* callbacks. */

static inline const char *vs_libssh2_version(void) { return libssh2_version(0); }

typedef ssize_t (*vs_ssh_send_fn)(libssh2_socket_t socket, const void *buffer, size_t length, int flags, void **abstract);
typedef ssize_t (*vs_ssh_recv_fn)(libssh2_socket_t socket, void *buffer, size_t length, int flags, void **abstract);

static inline LIBSSH2_SESSION *vs_ssh_session_init(void *abstract) { return libssh2_session_init_ex(NULL, NULL, NULL, abstract); }
static inline void vs_ssh_set_send(LIBSSH2_SESSION *s, vs_ssh_send_fn f) { libssh2_session_callback_set(s, LIBSSH2_CALLBACK_SEND, (void *)f); }
static inline void vs_ssh_set_recv(LIBSSH2_SESSION *s, vs_ssh_recv_fn f) { libssh2_session_callback_set(s, LIBSSH2_CALLBACK_RECV, (void *)f); }

static inline int vs_ssh_auth_key(LIBSSH2_SESSION *s, const char *user, const char *key, size_t keylen) {
    return libssh2_userauth_publickey_frommemory(s, user, strlen(user), NULL, 0, key, keylen, NULL);
}
static inline LIBSSH2_CHANNEL *vs_ssh_channel_open(LIBSSH2_SESSION *s) { return libssh2_channel_open_session(s); }
static inline int vs_ssh_channel_exec(LIBSSH2_CHANNEL *c, const char *command) { return libssh2_channel_exec(c, command); }
static inline ssize_t vs_ssh_channel_read(LIBSSH2_CHANNEL *c, char *buf, size_t n) { return libssh2_channel_read(c, buf, n); }
static inline ssize_t vs_ssh_channel_read_stderr(LIBSSH2_CHANNEL *c, char *buf, size_t n) { return libssh2_channel_read_stderr(c, buf, n); }
static inline ssize_t vs_ssh_channel_write(LIBSSH2_CHANNEL *c, const char *buf, size_t n) { return libssh2_channel_write(c, buf, n); }
static inline int vs_ssh_channel_eof_sent(LIBSSH2_CHANNEL *c) { return libssh2_channel_send_eof(c); }

#endif
