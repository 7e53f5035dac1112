/* api_neptun.c: the Neptun web UI API (SPEC section 4).
 * PATCH /api/users/{user_id}/chats/{chat_id}, cookie session, h3 errors with
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
};

/* $1 cookie hash, $2 user id, $3 chat id, $4 apply, $5/$6 name given/value. */
static const char sql[] =
    "WITH caller AS ("
    "    SELECT user_id FROM neptun.sessions"
    "     WHERE token_hash = $1::bytea AND expires_at > now()),"
    " target AS ("
    "    SELECT c.id FROM neptun.chat_conversations c JOIN caller s"
    "        ON s.user_id = c.neptun_user_id"
    "     WHERE c.neptun_user_id = $2::bigint AND c.id = $3::bigint),"
    " verdict AS ("
    "    SELECT CASE"
    "        WHEN NOT EXISTS (SELECT FROM caller) THEN 'session'"
    "        WHEN NOT EXISTS (SELECT FROM target) THEN 'chat'"
    "    END AS failure),"
    " updated AS ("
    "    UPDATE neptun.chat_conversations c"
    "       SET name = CASE WHEN $5::boolean THEN $6::text ELSE c.name END,"
    "           updated_at = now()"
    "      FROM verdict"
    "     WHERE verdict.failure IS NULL AND $4::boolean"
    "       AND c.id = $3::bigint AND c.neptun_user_id = $2::bigint"
    "    RETURNING c.*)"
    " SELECT verdict.failure,"
    "        (SELECT '{\"chat\":' || row_to_json(chat)::text || '}'"
    "           FROM (SELECT u.id, u.neptun_user_id, u.name, u.model,"
    "                        public.iso8601_ms(u.created_at) AS created_at,"
    "                        public.iso8601_ms(u.updated_at) AS updated_at) chat"
    "          WHERE u.id IS NOT NULL)"
    "   FROM verdict LEFT JOIN updated u ON true";

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
    .sql = sql,
};
