/* listener.c: where the FastCGI listening socket comes from.
 * Entry points: listener_open(), listener_remove_path().
 *
 * A pool reloading itself passes its socket to its new image by fd number
 * (LISTENER_ENV_FD), so that the socket, and the connections queued on it,
 * outlive the old image. systemd passes fds from 3 on (sd_listen_fds(3));
 * that protocol is small enough to read here without libsystemd. */
#include "listener.h"

#include "log.h"

#include <errno.h>
#include <fcgiapp.h>
#include <grp.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define SD_LISTEN_FDS_START 3

const char *listener_origin_name(enum listener_origin origin)
{
    switch (origin) {
    case LISTENER_REEXEC:
        return "passed on by the previous generation";
    case LISTENER_SYSTEMD:
        return "passed by systemd";
    case LISTENER_CREATED:
        return "created";
    case LISTENER_INHERITED:
        return "inherited on fd 0";
    case LISTENER_NONE:
        break;
    }
    return "none";
}

/* A decimal number in [min, max] from an environment variable, or -1. */
static long env_number(const char *name, long min, long max)
{
    const char *s = getenv(name);
    char *end;
    long v;

    if (!s || !*s)
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    return errno || *end || v < min || v > max ? -1 : v;
}

static bool is_listening_socket(int fd)
{
    int on = 0;
    socklen_t len = sizeof on;

    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

/* libfcgi reads an address without a colon as a unix socket path. */
static bool is_unix_path(const char *address)
{
    return strchr(address, ':') == NULL;
}

/* Removes the unix socket at path, and nothing that is not a socket. */
static void remove_socket(const char *path)
{
    struct stat st;

    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
}

/* Gives the socket to a group, such as the web server's, so that mode 0660
 * lets it connect and nobody else. */
static bool set_group(const char *path, const char *name)
{
    struct group *g = getgrnam(name);

    if (!g) {
        log_error("--socket-group: no group named %s", name);
        return false;
    }
    if (chown(path, (uid_t)-1, g->gr_gid) != 0) {
        log_error("cannot give %s to group %s: %s", path, name, strerror(errno));
        return false;
    }
    return true;
}

static bool create(const struct listen_options *o, struct listener *l)
{
    struct stat st;

    if (is_unix_path(o->address))
        remove_socket(o->address); /* a stale one from a previous run */
    l->fd = FCGX_OpenSocket(o->address, 1024);
    if (l->fd < 0) {
        log_error("cannot listen on %s", o->address);
        return false;
    }
    l->origin = LISTENER_CREATED;
    if (!is_unix_path(o->address))
        return true;
    if (o->socket_group && !set_group(o->address, o->socket_group))
        return false;
    if (o->socket_mode >= 0 && chmod(o->address, (mode_t)o->socket_mode) != 0) {
        log_error("cannot chmod %s: %s", o->address, strerror(errno));
        return false;
    }
    if (lstat(o->address, &st) == 0) {
        l->path = o->address;
        l->ino = st.st_ino;
    }
    return true;
}

/* The socket a reloading pool passed to its new image. */
static bool take_reexec(const struct listen_options *o, struct listener *l)
{
    long fd = env_number(LISTENER_ENV_FD, 0, INT_MAX);
    long ino = env_number(LISTENER_ENV_INO, 0, LONG_MAX);

    unsetenv(LISTENER_ENV_FD);
    unsetenv(LISTENER_ENV_INO);
    if (fd < 0 || !is_listening_socket((int)fd)) {
        log_error("%s does not name a listening socket", LISTENER_ENV_FD);
        return false;
    }
    l->fd = (int)fd;
    l->origin = LISTENER_REEXEC;
    if (ino > 0 && o->address && is_unix_path(o->address)) {
        l->path = o->address;
        l->ino = (ino_t)ino;
    }
    return true;
}

/* sd_listen_fds(): the variables are for this process only when LISTEN_PID
 * says so (a child would otherwise take its parent's sockets). */
static bool take_systemd(struct listener *l)
{
    long pid = env_number("LISTEN_PID", 1, INT_MAX);
    long n = env_number("LISTEN_FDS", 0, INT_MAX - SD_LISTEN_FDS_START);

    if (pid != (long)getpid())
        return false;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (n < 1)
        return false;
    if (n > 1)
        log_warn("systemd passed %ld sockets; serving the first (fd %d)", n,
                 SD_LISTEN_FDS_START);
    l->fd = SD_LISTEN_FDS_START;
    l->origin = LISTENER_SYSTEMD;
    return true;
}

bool listener_open(const struct listen_options *o, struct listener *l)
{
    *l = (struct listener){.fd = -1, .origin = LISTENER_NONE};
    if (FCGX_Init() != 0) {
        log_error("libfcgi did not initialise");
        return false;
    }
    if (getenv(LISTENER_ENV_FD))
        return take_reexec(o, l);
    if (take_systemd(l)) {
        if (!is_listening_socket(l->fd)) {
            log_error("fd %d from systemd is not a listening socket", l->fd);
            return false;
        }
        if (o->address)
            log_warn("--listen %s ignored: serving the socket systemd passed",
                     o->address);
        return true;
    }
    if (o->address)
        return create(o, l);
    if (!FCGX_IsCGI()) { /* fd 0 is a socket */
        l->fd = 0;
        l->origin = LISTENER_INHERITED;
    }
    return true;
}

bool listener_remove_path(const struct listener *l)
{
    struct stat st;

    if (!l->path || lstat(l->path, &st) != 0 || !S_ISSOCK(st.st_mode) ||
        st.st_ino != l->ino)
        return false;
    return unlink(l->path) == 0;
}
