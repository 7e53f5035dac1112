/* dbhosts.c: see dbhosts.h. */
#include "dbhosts.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

/* The lists, in the order of struct db_hosts' fields. */
static const char *const names[] = {"host", "hostaddr", "port"};

/* Entries in a comma-separated list ("" has none); -1 when one is empty
 * (libpq would fill in its default there, which an override cannot say). */
static int entries(const char *list)
{
    int n = 1;

    if (!*list)
        return 0;
    for (const char *p = list; *p; p++)
        if (*p == ',') {
            if (p == list || p[1] == ',' || p[1] == '\0')
                return -1;
            n++;
        }
    return n;
}

/* Entry k of a list of count entries into out (n bytes, large enough). */
static void entry(const char *list, int k, char *out, size_t n)
{
    const char *p = list;

    for (int i = 0; i < k; i++)
        p = strchr(p, ',') + 1;
    size_t len = strcspn(p, ",");
    snprintf(out, n, "%.*s", (int)len, p);
}

/* The value of keyword in options (NULL: none), or NULL when unset or empty. */
static const char *option(const PQconninfoOption *options, const char *keyword)
{
    for (const PQconninfoOption *o = options; o && o->keyword; o++)
        if (strcmp(o->keyword, keyword) == 0)
            return o->val && *o->val ? o->val : NULL;
    return NULL;
}

static bool copy(char *out, const char *value)
{
    size_t len = value ? strlen(value) : 0;

    out[0] = '\0';
    if (len >= DB_HOSTS_LIST_MAX)
        return false;
    memcpy(out, value ? value : "", len + 1);
    return true;
}

void db_hosts_split(struct db_hosts *h)
{
    int hosts = entries(h->host), addrs = entries(h->hostaddr), ports = entries(h->port);
    int count = hosts ? hosts : addrs;

    h->count = 1;
    if (count <= 1 || hosts < 0 || addrs < 0 || ports < 0)
        return;
    if ((hosts && addrs && addrs != hosts) || (ports > 1 && ports != count))
        return;
    h->count = count;
}

void db_hosts_read(struct db_hosts *h, const char *conninfo)
{
    char *lists[] = {h->host, h->hostaddr, h->port};
    /* A bare database name is no connection string: nothing to parse. */
    bool parse = conninfo && (strchr(conninfo, '=') || strstr(conninfo, "://"));
    PQconninfoOption *given = parse ? PQconninfoParse(conninfo, NULL) : NULL;
    PQconninfoOption *defaults = PQconndefaults();
    bool whole = true;

    for (size_t i = 0; i < 3; i++) {
        const char *value = option(given, names[i]);
        whole = copy(lists[i], value ? value : option(defaults, names[i])) && whole;
    }
    PQconninfoFree(given);
    PQconninfoFree(defaults);
    db_hosts_split(h);
    if (!whole)
        h->count = 1;
}

size_t db_hosts_attempt(const struct db_hosts *h, int k, const char *keys[3],
                        const char *values[3], char *buf, size_t n)
{
    const char *lists[] = {h->host, h->hostaddr, h->port};
    size_t used = 0, count = 0;

    if (h->count <= 1)
        return 0;
    for (size_t i = 0; i < 3; i++) {
        /* One port for all stays as it is. */
        if (!*lists[i] || (i == 2 && !strchr(lists[i], ',')))
            continue;
        entry(lists[i], k, buf + used, n - used);
        keys[count] = names[i];
        values[count++] = buf + used;
        used += strlen(buf + used) + 1;
    }
    return count;
}
