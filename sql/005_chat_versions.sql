-- 005_chat_versions: a version number on every chat, for the ETag of its representation
-- (issue 11). The worker's update sets version = nextval(<schema>.chat_versions) whenever
-- it changes something, so the version, and the ETag "<version>" made of it, changes on
-- every update of the row and only then; If-Match compares it inside the same UPDATE.
--
-- FOR OPS, before running this migration: a volatile default (nextval) makes ADD COLUMN
-- rewrite each chats table once, so that every existing row gets its own number. The
-- rewrite holds an ACCESS EXCLUSIVE lock on the table for its duration (reads and updates
-- of chats wait), takes time and disk in proportion to the table (measured: 4 s for a
-- million Recoup chats, 123 MB with their indexes, on a busy 2-core machine; room for a
-- second copy of the table and its indexes while it runs), and writes as much WAL. Run
-- it in a quiet window.
--
-- Anything else that updates these tables (other services, ops scripts) must set
-- version = nextval('<schema>.chat_versions') too when it changes a row, or clients that
-- hold the old ETag would overwrite its change.

CREATE SEQUENCE recoup.chat_versions AS bigint;
ALTER TABLE recoup.chats
    ADD COLUMN version bigint NOT NULL DEFAULT nextval('recoup.chat_versions');
ALTER SEQUENCE recoup.chat_versions OWNED BY recoup.chats.version;
COMMENT ON COLUMN recoup.chats.version IS
    'Changes on every update (nextval of recoup.chat_versions); the ETag is "<version>"';

CREATE SEQUENCE neptun.chat_versions AS bigint;
ALTER TABLE neptun.chat_conversations
    ADD COLUMN version bigint NOT NULL DEFAULT nextval('neptun.chat_versions');
ALTER SEQUENCE neptun.chat_versions OWNED BY neptun.chat_conversations.version;
COMMENT ON COLUMN neptun.chat_conversations.version IS
    'Changes on every update (nextval of neptun.chat_versions); the ETag is "<version>"';

CREATE SEQUENCE leanmcp.chat_versions AS bigint;
ALTER TABLE leanmcp.chats
    ADD COLUMN version bigint NOT NULL DEFAULT nextval('leanmcp.chat_versions');
ALTER SEQUENCE leanmcp.chat_versions OWNED BY leanmcp.chats.version;
COMMENT ON COLUMN leanmcp.chats.version IS
    'Changes on every update (nextval of leanmcp.chat_versions); the ETag is "<version>"';
