/* api_leanmcp.c: the LeanMCP API (SPEC section 5).
 * PATCH (and GET) /api/chats/id/{id}, scoped Bearer keys, NestJS errors with every
 * class-validator problem listed. */
#include "api.h"

static const struct api_field fields[] = {
    {.key = "title", .type = FIELD_STRING},
    {.key = "summary", .type = FIELD_STRING, .nullable = true, .may_be_empty = true},
    {.key = "modelUsed", .type = FIELD_STRING, .nullable = true},
    {.key = "systemMessageId", .type = FIELD_STRING, .nullable = true},
    {.key = "metadata", .type = FIELD_OBJECT},
};

/* A top level that is not an object is bad JSON; unknown keys one each. */
static const struct schema_dialect class_validator = {
    .wrong_type = "{field} must be {expected}",
    .empty = "{field} should not be empty",
    .unknown_one = "property {keys} should not exist",
    .type_names = {"a string", "an object"},
};

static const struct api_step steps[] = {
    {FAIL_CRED_MISSING | FAIL_CRED_AMBIGUOUS | FAIL_CRED_SCHEME, "key", 401,
     "Unauthorized"},
    {0, "scope", 403, "Forbidden resource"},
    {FAIL_PARAMS, NULL, 400, "Validation failed (uuid is expected)"},
    {FAIL_JSON, NULL, 400, "Unexpected token in JSON body"},
    {FAIL_SCHEMA, NULL, 400, NULL},
    {0, "chat", 404, "Chat not found"},
    {0, "precondition", 412, "Precondition Failed"},
};

/* The representation (SPEC 5), in its key order, at the top level. */
static const struct api_column columns[] = {
    {"id", COL_UUID},
    {"userId", COL_TEXT},
    {"title", COL_TEXT},
    {"isPublic", COL_BOOL},
    {"status", COL_TEXT},
    {"createdAt", COL_TIMESTAMP},
    {"updatedAt", COL_TIMESTAMP},
    {"messageCount", COL_INT4},
    {"showcased", COL_BOOL},
    {"summary", COL_TEXT},
    {"modelUsed", COL_TEXT},
    {"systemMessageId", COL_TEXT},
    {"metadata", COL_JSONB},
};

/* The key's user is the owner the chat must have, and the actor of the
 * audit row. */
#define CHECKS                                                                           \
    "WITH v AS ("                                                                        \
    "    SELECT CASE WHEN k.user_id IS NULL THEN 'key'"                                  \
    "                WHEN NOT 'chat' = ANY (k.scopes) THEN 'scope' END AS failure,"      \
    "           k.user_id"                                                               \
    "      FROM (SELECT) one"                                                            \
    "      LEFT JOIN leanmcp.api_keys k ON k.key_hash = $1::bytea"                       \
    "           AND (k.revoked_at IS NULL OR k.revoked_at > now()))"

/* Whether the body sets any field: a body that sets none ({}) changes
 * nothing, so updated_at and the version stay. */
#define ANY_GIVEN                                                                        \
    "($4::boolean OR $6::boolean OR $8::boolean OR $10::boolean OR $12::boolean)"

/* One field's entry in the audit row's changes, when the body sets it. */
#define CHANGE(given, key, column)                                                       \
    "CASE WHEN " given "::boolean THEN jsonb_build_object('" key                         \
    "', jsonb_build_object("                                                             \
    "'old', o." column ", 'new', c." column ")) ELSE '{}' END"

/* The audit row's changes: every field the body sets, old and new.
 * (clang-format would break these lines inside the macro calls.) */
/* clang-format off */
#define CHANGES                                                                          \
    CHANGE("$4", "title", "title")                                                       \
    " || " CHANGE("$6", "summary", "summary")                                            \
    " || " CHANGE("$8", "modelUsed", "model_used")                                       \
    " || " CHANGE("$10", "systemMessageId", "system_message_id")                         \
    " || " CHANGE("$12", "metadata", "metadata")
/* clang-format on */

/* $1 key hash, $2 chat id, $3 apply, then given/value pairs: $4/$5 title,
 * $6/$7 summary, $8/$9 modelUsed, $10/$11 systemMessageId, $12/$13 metadata;
 * $14 the versions If-Match names, $15 request id. The owner and the status
 * are conditions on the updated row itself. o is the chat's row as the
 * update found it: the audit row's old values. */
static const char patch_sql[] = CHECKS
    ","
    " u AS ("
    "    UPDATE leanmcp.chats c"
    "       SET title = CASE WHEN $4::boolean THEN $5::text ELSE c.title END,"
    "           summary = CASE WHEN $6::boolean THEN $7::text ELSE c.summary END,"
    "           model_used = CASE WHEN $8::boolean THEN $9::text ELSE c.model_used END,"
    "           system_message_id = CASE WHEN $10::boolean THEN $11::text"
    "                                    ELSE c.system_message_id END,"
    "           metadata = CASE WHEN $12::boolean THEN $13::jsonb ELSE c.metadata END,"
    "           updated_at = CASE WHEN " ANY_GIVEN " THEN now() ELSE c.updated_at END,"
    "           version = CASE WHEN " ANY_GIVEN " THEN nextval('leanmcp.chat_versions')"
    "                          ELSE c.version END"
    "      FROM v, leanmcp.chats o"
    "     WHERE v.failure IS NULL AND $3::boolean"
    "       AND c.id = $2::uuid AND c.user_id = v.user_id AND c.status <> 'deleted'"
    "       AND o.id = c.id"
    "       AND ($14::bigint[] IS NULL OR c.version = ANY ($14::bigint[]))"
    "    RETURNING c.id, c.user_id, c.title, c.is_public, c.status, c.created_at,"
    "              c.updated_at, c.message_count, c.showcased, c.summary, c.model_used,"
    "              c.system_message_id, c.metadata, c.version, " CHANGES " AS changes),"
    " a AS ("
    "    INSERT INTO leanmcp.chat_changes (chat_id, user_id, version, changes,"
    "                                      request_id)"
    "    SELECT u.id, u.user_id, u.version, u.changes, $15::text FROM u)"
    " SELECT v.failure,"
    "        CASE WHEN u.id IS NOT NULL THEN u.version"
    "             WHEN v.failure IS NULL THEN ("
    "                 SELECT c.version FROM leanmcp.chats c"
    "                  WHERE c.id = $2::uuid AND c.user_id = v.user_id"
    "                    AND c.status <> 'deleted')"
    "        END,"
    "        CASE WHEN u.id IS NOT NULL THEN ROW("
    "            u.id, u.user_id, u.title, u.is_public, u.status, u.created_at,"
    "            u.updated_at, u.message_count, u.showcased, u.summary, u.model_used,"
    "            u.system_message_id, u.metadata) END"
    "   FROM v LEFT JOIN u ON true";

/* $1 key hash, $2 chat id. */
static const char get_sql[] = CHECKS
    " SELECT v.failure, c.version,"
    "        CASE WHEN c.id IS NOT NULL THEN ROW("
    "            c.id, c.user_id, c.title, c.is_public, c.status, c.created_at,"
    "            c.updated_at, c.message_count, c.showcased, c.summary, c.model_used,"
    "            c.system_message_id, c.metadata) END"
    "   FROM v LEFT JOIN leanmcp.chats c"
    "     ON v.failure IS NULL AND c.id = $2::uuid AND c.user_id = v.user_id"
    "    AND c.status <> 'deleted'";

static const struct api_op ops[] = {
    {"GET", OP_READ, 200, get_sql},
    {"PATCH", OP_UPDATE, 200, patch_sql},
};

const struct api_profile api_leanmcp = {
    .name = "leanmcp",
    .pattern = "/api/chats/id/{}",
    .params = {PARAM_UUID},
    .nparams = 1,
    .credential = CRED_BEARER,
    .fields = fields,
    .nfields = sizeof fields / sizeof fields[0],
    .dialect = &class_validator,
    .steps = steps,
    .nsteps = sizeof steps / sizeof steps[0],
    .shape = SHAPE_NESTJS,
    .target_missing = "chat",
    .precondition_failed = "precondition",
    .columns = columns,
    .ncolumns = sizeof columns / sizeof columns[0],
    .ops = ops,
    .nops = sizeof ops / sizeof ops[0],
};
