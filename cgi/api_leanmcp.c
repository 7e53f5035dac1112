/* api_leanmcp.c: the LeanMCP API (SPEC section 5).
 * PATCH /api/chats/id/{id}, scoped Bearer keys, NestJS errors with every
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
};

/* $1 key hash, $2 chat id, $3 apply, then given/value pairs: $4/$5 title,
 * $6/$7 summary, $8/$9 modelUsed, $10/$11 systemMessageId, $12/$13 metadata.
 * A body that sets nothing leaves updated_at alone. */
static const char sql[] =
    "WITH caller AS ("
    "    SELECT user_id, scopes FROM leanmcp.api_keys"
    "     WHERE key_hash = $1::bytea AND (revoked_at IS NULL OR revoked_at > now())),"
    " target AS ("
    "    SELECT c.id FROM leanmcp.chats c JOIN caller k ON k.user_id = c.user_id"
    "     WHERE c.id = $2::uuid AND c.status <> 'deleted'),"
    " verdict AS ("
    "    SELECT CASE"
    "        WHEN NOT EXISTS (SELECT FROM caller) THEN 'key'"
    "        WHEN NOT EXISTS (SELECT FROM caller WHERE 'chat' = ANY (scopes)) THEN "
    "'scope'"
    "        WHEN NOT EXISTS (SELECT FROM target) THEN 'chat'"
    "    END AS failure),"
    " updated AS ("
    "    UPDATE leanmcp.chats c"
    "       SET title = CASE WHEN $4::boolean THEN $5::text ELSE c.title END,"
    "           summary = CASE WHEN $6::boolean THEN $7::text ELSE c.summary END,"
    "           model_used = CASE WHEN $8::boolean THEN $9::text ELSE c.model_used END,"
    "           system_message_id = CASE WHEN $10::boolean THEN $11::text"
    "                                    ELSE c.system_message_id END,"
    "           metadata = CASE WHEN $12::boolean THEN $13::jsonb ELSE c.metadata END,"
    "           updated_at = CASE WHEN $4::boolean OR $6::boolean OR $8::boolean"
    "                               OR $10::boolean OR $12::boolean"
    "                             THEN now() ELSE c.updated_at END"
    "      FROM verdict, target"
    "     WHERE verdict.failure IS NULL AND $3::boolean AND c.id = target.id"
    "    RETURNING c.*)"
    " SELECT verdict.failure,"
    "        (SELECT row_to_json(chat)::text"
    "           FROM (SELECT u.id, u.user_id AS \"userId\", u.title,"
    "                        u.is_public AS \"isPublic\", u.status,"
    "                        public.iso8601_ms(u.created_at) AS \"createdAt\","
    "                        public.iso8601_ms(u.updated_at) AS \"updatedAt\","
    "                        u.message_count AS \"messageCount\", u.showcased, u.summary,"
    "                        u.model_used AS \"modelUsed\","
    "                        u.system_message_id AS \"systemMessageId\", u.metadata) chat"
    "          WHERE u.id IS NOT NULL)"
    "   FROM verdict LEFT JOIN updated u ON true";

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
    .sql = sql,
};
