-- 006_chat_changes: the audit trail of chat updates (issue 11). Every successful PATCH
-- appends one row, written by the same statement as the update (one transaction): the
-- chat, who (Recoup: the account; Neptun: the user; LeanMCP: the key's user), the chat's
-- new version, the fields the request set with their old and new values, e.g.
-- {"title":{"old":"a","new":"b"}} (keys as the API names them), the request id (nginx's
-- $request_id, also in the access logs), and the time (the transaction's, as updated_at).
-- A request that fails (401/403/404/400/412/...) writes none.
--
-- No foreign keys: the trail outlives the chats it tells about, and an insert need not
-- lock them. An index by chat and time answers "who changed this chat, when"; a BRIN
-- index by time (tiny, since rows arrive in time order) finds old rows to prune. The
-- tables only grow: prune or partition them by time (README, "Audit trail").

CREATE TABLE recoup.chat_changes (
    chat_id    text NOT NULL,
    account_id text NOT NULL,
    version    bigint NOT NULL,
    changes    jsonb NOT NULL,
    request_id text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_changes_chat_id_changed_at_idx ON recoup.chat_changes (chat_id, changed_at);
CREATE INDEX chat_changes_changed_at_idx ON recoup.chat_changes USING brin (changed_at);

CREATE TABLE neptun.chat_changes (
    chat_id    bigint NOT NULL,
    user_id    bigint NOT NULL,
    version    bigint NOT NULL,
    changes    jsonb NOT NULL,
    request_id text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_changes_chat_id_changed_at_idx ON neptun.chat_changes (chat_id, changed_at);
CREATE INDEX chat_changes_changed_at_idx ON neptun.chat_changes USING brin (changed_at);

CREATE TABLE leanmcp.chat_changes (
    chat_id    uuid NOT NULL,
    user_id    text NOT NULL,
    version    bigint NOT NULL,
    changes    jsonb NOT NULL,
    request_id text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_changes_chat_id_changed_at_idx ON leanmcp.chat_changes (chat_id, changed_at);
CREATE INDEX chat_changes_changed_at_idx ON leanmcp.chat_changes USING brin (changed_at);

COMMENT ON TABLE recoup.chat_changes IS
    'One row per successful PATCH: who (account_id) changed which fields of chat_id, from what to what (changes), when';
COMMENT ON TABLE neptun.chat_changes IS
    'One row per successful PATCH: who (user_id) changed which fields of chat_id, from what to what (changes), when';
COMMENT ON TABLE leanmcp.chat_changes IS
    'One row per successful PATCH: who (user_id) changed which fields of chat_id, from what to what (changes), when';
