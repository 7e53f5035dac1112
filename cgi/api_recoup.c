/* api_recoup.c: the Recoup sessions API (SPEC section 3).
 * PATCH /api/sessions/{sessionId}/chats/{chatId}, x-api-key or Bearer key,
 * zod (v4) messages, first problem wins. */
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
};

/* $1 key hash, $2 session id, $3 chat id, $4 apply,
 * $5/$6 title given/value, $7/$8 modelId given/value. */
static const char sql[] =
    "WITH caller AS ("
    "    SELECT account_id FROM recoup.api_keys"
    "     WHERE key_hash = $1::bytea AND (revoked_at IS NULL OR revoked_at > now())),"
    " session AS (SELECT account_id FROM recoup.sessions WHERE id = $2::text),"
    " target AS ("
    "    SELECT id FROM recoup.chats WHERE id = $3::text AND session_id = $2::text),"
    " verdict AS ("
    "    SELECT CASE"
    "        WHEN NOT EXISTS (SELECT FROM caller) THEN 'key'"
    "        WHEN NOT EXISTS (SELECT FROM session) THEN 'session'"
    "        WHEN NOT EXISTS (SELECT FROM session JOIN caller USING (account_id))"
    "            THEN 'owner'"
    "        WHEN NOT EXISTS (SELECT FROM target) THEN 'chat'"
    "    END AS failure),"
    " updated AS ("
    "    UPDATE recoup.chats c"
    "       SET title = CASE WHEN $5::boolean THEN $6::text ELSE c.title END,"
    "           model_id = CASE WHEN $7::boolean THEN $8::text ELSE c.model_id END,"
    "           updated_at = now()"
    "      FROM verdict"
    "     WHERE verdict.failure IS NULL AND $4::boolean"
    "       AND c.id = $3::text AND c.session_id = $2::text"
    "    RETURNING c.*)"
    " SELECT verdict.failure,"
    "        (SELECT '{\"chat\":' || row_to_json(chat)::text || '}'"
    "           FROM (SELECT u.id, u.session_id AS \"sessionId\", u.title,"
    "                        u.model_id AS \"modelId\","
    "                        u.active_stream_id AS \"activeStreamId\","
    "                        public.iso8601_ms(u.last_assistant_message_at)"
    "                            AS \"lastAssistantMessageAt\","
    "                        public.iso8601_ms(u.created_at) AS \"createdAt\","
    "                        public.iso8601_ms(u.updated_at) AS \"updatedAt\") chat"
    "          WHERE u.id IS NOT NULL)"
    "   FROM verdict LEFT JOIN updated u ON true";

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
    .extra_headers = "Access-Control-Allow-Origin: *\r\n",
    .sql = sql,
};
