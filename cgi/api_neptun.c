/* api_neptun.c: the Neptun web UI API (SPEC section 4).
 * PATCH (and GET) /api/users/{user_id}/chats/{chat_id}, cookie session, h3 errors with
 * zod (v3) issues. */
#include "api.h"

static const struct api_field fields[] = {
    {.key = "name", .type = FIELD_STRING, .required = true},
};

/* Unknown keys are ignored; a top level that is not an object is bad JSON. */
static const struct schema_dialect zod3 = {
    .missing = "Required",
    .wrong_type = "Expected {expected}, received {received}",
    .empty = "String must contain at least 1 character(s)",
    .type_names = {"string", "object"},
};

static const struct api_step steps[] = {
    {FAIL_CRED_MISSING, "session", 401, "Unauthorized"},
    {FAIL_PARAMS, NULL, 400, "Bad Request. Invalid params."},
    {0, "chat", 404, "Chat or user not found"},
    {FAIL_JSON, NULL, 400, "Bad Request. Invalid JSON body."},
    {FAIL_SCHEMA, NULL, 400, "Bad Request. Invalid body(name)."},
    {0, "precondition", 412, "Precondition Failed"},
};

/* The representation (SPEC 4), in its key order, under "chat". */
static const struct api_column columns[] = {
    {"id", COL_INT8},    {"neptun_user_id", COL_INT8},  {"name", COL_TEXT},
    {"model", COL_TEXT}, {"created_at", COL_TIMESTAMP}, {"updated_at", COL_TIMESTAMP},
};

/* A session of another user is the same 404 as a missing chat. The
 * session's user is the actor of the audit row. */
#define CHECKS                                                                           \
    "WITH v AS ("                                                                        \
    "    SELECT CASE WHEN s.user_id IS NULL THEN 'session'"                              \
    "                WHEN s.user_id <> $2::bigint THEN 'chat' END AS failure,"           \
    "           s.user_id"                                                               \
    "      FROM (SELECT) one"                                                            \
    "      LEFT JOIN neptun.sessions s ON s.token_hash = $1::bytea"                      \
    "           AND s.expires_at > now())"

/* $1 cookie hash, $2 user id, $3 chat id, $4 apply, $5/$6 name given/value,
 * $7 the versions If-Match names, $8 request id. o is the chat's row as the
 * update found it: the audit row's old values. */
static const char patch_sql[] = CHECKS
    ","
    " u AS ("
    "    UPDATE neptun.chat_conversations c"
    "       SET name = CASE WHEN $5::boolean THEN $6::text ELSE c.name END,"
    "           updated_at = now(),"
    "           version = nextval('neptun.chat_versions')"
    "      FROM v, neptun.chat_conversations o"
    "     WHERE v.failure IS NULL AND $4::boolean"
    "       AND c.id = $3::bigint AND c.neptun_user_id = $2::bigint AND o.id = c.id"
    "       AND ($7::bigint[] IS NULL OR c.version = ANY ($7::bigint[]))"
    "    RETURNING c.id, c.neptun_user_id, c.name, c.model, c.created_at, c.updated_at,"
    "              c.version,"
    "              CASE WHEN $5::boolean THEN jsonb_build_object('name',"
    "                   jsonb_build_object('old', o.name, 'new', c.name)) ELSE '{}' END"
    "                AS changes),"
    " a AS ("
    "    INSERT INTO neptun.chat_changes (chat_id, user_id, version, changes, request_id)"
    "    SELECT u.id, v.user_id, u.version, u.changes, $8::text FROM u, v)"
    " SELECT v.failure,"
    "        CASE WHEN u.id IS NOT NULL THEN u.version"
    "             WHEN v.failure IS NULL THEN ("
    "                 SELECT version FROM neptun.chat_conversations"
    "                  WHERE id = $3::bigint AND neptun_user_id = $2::bigint)"
    "        END,"
    "        CASE WHEN u.id IS NOT NULL THEN ROW("
    "            u.id, u.neptun_user_id, u.name, u.model, u.created_at, u.updated_at) END"
    "   FROM v LEFT JOIN u ON true";

/* $1 cookie hash, $2 user id, $3 chat id. */
static const char get_sql[] = CHECKS
    " SELECT v.failure, c.version,"
    "        CASE WHEN c.id IS NOT NULL THEN ROW("
    "            c.id, c.neptun_user_id, c.name, c.model, c.created_at, c.updated_at) END"
    "   FROM v LEFT JOIN neptun.chat_conversations c"
    "     ON v.failure IS NULL AND c.id = $3::bigint AND c.neptun_user_id = $2::bigint";

static const struct api_op ops[] = {
    {"GET", OP_READ, 200, get_sql},
    {"PATCH", OP_UPDATE, 200, patch_sql},
};

const struct api_profile api_neptun = {
    .name = "neptun",
    .pattern = "/api/users/{}/chats/{}",
    .params = {PARAM_BIGINT, PARAM_BIGINT},
    .nparams = 2,
    .credential = CRED_COOKIE,
    .credential_cookie = "neptun-session",
    .fields = fields,
    .nfields = sizeof fields / sizeof fields[0],
    .dialect = &zod3,
    .steps = steps,
    .nsteps = sizeof steps / sizeof steps[0],
    .shape = SHAPE_H3,
    .target_missing = "chat",
    .precondition_failed = "precondition",
    .envelope = "chat",
    .columns = columns,
    .ncolumns = sizeof columns / sizeof columns[0],
    .ops = ops,
    .nops = sizeof ops / sizeof ops[0],
};
