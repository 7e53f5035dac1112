/* listener.h: the FastCGI listening socket, wherever it comes from. */
#ifndef CHATPATCH_LISTENER_H
#define CHATPATCH_LISTENER_H

#include <stdbool.h>
#include <sys/types.h>

/* The environment variables a pool passes to itself when it re-executes
 * (pool.c): the listening socket's fd, and the inode of the unix socket
 * path it created (0: none, the socket is not this pool's to remove). */
#define LISTENER_ENV_FD  "CHATPATCH_LISTEN_FD"
#define LISTENER_ENV_INO "CHATPATCH_LISTEN_INO"

enum listener_origin {
    LISTENER_NONE,     /* no socket: a CGI request, or a usage error */
    LISTENER_REEXEC,   /* this pool's own, across a reload */
    LISTENER_SYSTEMD,  /* socket activation: LISTEN_FDS, fd 3 */
    LISTENER_CREATED,  /* --listen */
    LISTENER_INHERITED /* fd 0, from a FastCGI process manager */
};

struct listener {
    int fd;
    enum listener_origin origin;
    const char *path; /* the unix socket path this process created, or NULL */
    ino_t ino;        /* that path's inode when created */
};

struct listen_options {
    const char *address; /* --listen: PATH or HOST:PORT, or NULL */
    long socket_mode;    /* -1: as the umask leaves it */
    const char *socket_group;
};

/* Finds the socket to serve, in this order: the one a reloading pool
 * passed itself, one passed by systemd (LISTEN_PID is this process; the
 * LISTEN_* variables are then removed, so no child takes them for its
 * own), --listen (created; a stale unix socket at the path is replaced),
 * a socket on fd 0. Returns false, having logged why, when a socket was
 * asked for and cannot be had; origin LISTENER_NONE when there is none. */
bool listener_open(const struct listen_options *o, struct listener *l);

/* Removes the unix socket path this pool created, if it is still the one
 * it created (a newer pool may have made its own there since), so that no
 * new connection can queue. Returns whether it did. */
bool listener_remove_path(const struct listener *l);

const char *listener_origin_name(enum listener_origin origin);

#endif
