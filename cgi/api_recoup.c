/* api_recoup.c: the Recoup sessions API (SPEC section 3).
 * PATCH (and GET) /api/sessions/{sessionId}/chats/{chatId}, x-api-key or
 * Bearer key, zod (v4) messages, first problem wins; open to browsers of any
 * origin (CORS). */
#include "api.h"

static const struct api_field fields[] = {
    {.key = "title", .type = FIELD_STRING},
    {.key = "modelId", .type = FIELD_STRING},
};

static const struct schema_dialect zod4 = {
    .not_object = "Invalid input: expected {expected}, received {received}",
    .wrong_type = "Invalid input: expected {expected}, received {received}",
    .empty = "{field} cannot be empty",
    .unknown_one = "Unrecognized key: {keys}",
    .unknown_many = "Unrecognized keys: {keys}",
    .none_given = "At least one field is required",
    .type_names = {"string", "object"},
};

/* The real service's order of checks. */
static const struct api_step steps[] = {
    {FAIL_CRED_MISSING | FAIL_CRED_AMBIGUOUS, NULL, 401,
     "Exactly one of x-api-key or Authorization must be provided"},
    {FAIL_CRED_SCHEME, NULL, 401, "Authorization header with Bearer token required"},
    {0, "key", 401, "Unauthorized"},
    {0, "session", 404, "Session not found"},
    {0, "owner", 403, "Forbidden"},
    {0, "chat", 404, "Chat not found"},
    {FAIL_JSON, NULL, 400, "Invalid JSON body"},
    {FAIL_SCHEMA, NULL, 400, NULL},
    {0, "precondition", 412, "Precondition Failed"},
};

/* The representation (SPEC 3), in its key order, under "chat". */
static const struct api_column columns[] = {
    {"id", COL_TEXT},
    {"sessionId", COL_TEXT},
    {"title", COL_TEXT},
    {"modelId", COL_TEXT},
    {"activeStreamId", COL_TEXT},
    {"lastAssistantMessageAt", COL_TIMESTAMP},
    {"createdAt", COL_TIMESTAMP},
    {"updatedAt", COL_TIMESTAMP},
};

/* The key and the session decide the first three checks; the chat is the
 * target. The caller's account is the actor of the audit row. */
#define CHECKS                                                                           \
    "WITH v AS ("                                                                        \
    "    SELECT CASE WHEN k.account_id IS NULL THEN 'key'"                               \
    "                WHEN s.account_id IS NULL THEN 'session'"                           \
    "                WHEN s.account_id <> k.account_id THEN 'owner' END AS failure,"     \
    "           k.account_id"                                                            \
    "      FROM (SELECT) one"                                                            \
    "      LEFT JOIN recoup.api_keys k ON k.key_hash = $1::bytea"                        \
    "           AND (k.revoked_at IS NULL OR k.revoked_at > now())"                      \
    "      LEFT JOIN recoup.sessions s ON s.id = $2::text)"

/* $1 key hash, $2 session id, $3 chat id, $4 apply, $5/$6 title given/value,
 * $7/$8 modelId given/value, $9 the versions If-Match names, $10 request id.
 * o is the chat's row as the update found it: the audit row's old values. */
static const char patch_sql[] = CHECKS
    ","
    " u AS ("
    "    UPDATE recoup.chats c"
    "       SET title = CASE WHEN $5::boolean THEN $6::text ELSE c.title END,"
    "           model_id = CASE WHEN $7::boolean THEN $8::text ELSE c.model_id END,"
    "           updated_at = now(),"
    "           version = nextval('recoup.chat_versions')"
    "      FROM v, recoup.chats o"
    "     WHERE v.failure IS NULL AND $4::boolean"
    "       AND c.id = $3::text AND c.session_id = $2::text AND o.id = c.id"
    "       AND ($9::bigint[] IS NULL OR c.version = ANY ($9::bigint[]))"
    "    RETURNING c.id, c.session_id, c.title, c.model_id, c.active_stream_id,"
    "              c.last_assistant_message_at, c.created_at, c.updated_at, c.version,"
    "              CASE WHEN $5::boolean THEN jsonb_build_object('title',"
    "                   jsonb_build_object('old', o.title, 'new', c.title)) ELSE '{}' END"
    "              || CASE WHEN $7::boolean THEN jsonb_build_object('modelId',"
    "                   jsonb_build_object('old', o.model_id, 'new', c.model_id))"
    "                 ELSE '{}' END AS changes),"
    " a AS ("
    "    INSERT INTO recoup.chat_changes (chat_id, account_id, version, changes,"
    "                                     request_id)"
    "    SELECT u.id, v.account_id, u.version, u.changes, $10::text FROM u, v)"
    " SELECT v.failure,"
    "        CASE WHEN u.id IS NOT NULL THEN u.version"
    "             WHEN v.failure IS NULL THEN ("
    "                 SELECT version FROM recoup.chats"
    "                  WHERE id = $3::text AND session_id = $2::text)"
    "        END,"
    "        CASE WHEN u.id IS NOT NULL THEN ROW("
    "            u.id, u.session_id, u.title, u.model_id, u.active_stream_id,"
    "            u.last_assistant_message_at, u.created_at, u.updated_at) END"
    "   FROM v LEFT JOIN u ON true";

/* $1 key hash, $2 session id, $3 chat id. */
static const char get_sql[] = CHECKS
    " SELECT v.failure, c.version,"
    "        CASE WHEN c.id IS NOT NULL THEN ROW(c.id, c.session_id, c.title, c.model_id,"
    "            c.active_stream_id, c.last_assistant_message_at, c.created_at,"
    "            c.updated_at) END"
    "   FROM v LEFT JOIN recoup.chats c"
    "     ON v.failure IS NULL AND c.id = $3::text AND c.session_id = $2::text";

/* The real service answers browsers: OPTIONS is their preflight. */
static const struct api_op ops[] = {
    {"GET", OP_READ, 200, get_sql},
    {"PATCH", OP_UPDATE, 200, patch_sql},
    {"OPTIONS", OP_PREFLIGHT, 204, NULL},
};

static const struct api_cors cors = {
    .allow_origin = "*",
    .allow_headers = "authorization, content-type, if-match, if-none-match, x-api-key",
    .expose_headers = "ETag",
    .max_age = 86400,
};

const struct api_profile api_recoup = {
    .name = "recoup",
    .pattern = "/api/sessions/{}/chats/{}",
    .params = {PARAM_TEXT, PARAM_TEXT},
    .nparams = 2,
    .credential = CRED_API_KEY_OR_BEARER,
    .fields = fields,
    .nfields = sizeof fields / sizeof fields[0],
    .dialect = &zod4,
    .steps = steps,
    .nsteps = sizeof steps / sizeof steps[0],
    .shape = SHAPE_STATUS_ERROR,
    .message_413 = "Request body too large",
    .message_415 = "Content-Type must be application/json",
    .cors = &cors,
    .target_missing = "chat",
    .precondition_failed = "precondition",
    .envelope = "chat",
    .columns = columns,
    .ncolumns = sizeof columns / sizeof columns[0],
    .ops = ops,
    .nops = sizeof ops / sizeof ops[0],
};
