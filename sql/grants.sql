-- grants.sql: the least a chatpatch worker's database role needs. Not a
-- migration: roles belong to the cluster, and ops choose the name.
--
--   psql -v ON_ERROR_STOP=1 -v worker=chatpatch -f sql/grants.sql "$DATABASE_URL"
--
-- The worker reads keys and sessions, updates only the chat columns the
-- APIs change (RETURNING reads the whole row) and their version (taken from
-- the schema's chat_versions sequence), and appends audit rows to
-- chat_changes, which it never reads. Run it again after a migration that
-- adds something the worker uses.

GRANT USAGE ON SCHEMA recoup, neptun, leanmcp TO :"worker";

GRANT SELECT ON recoup.api_keys, recoup.sessions TO :"worker";
GRANT SELECT, UPDATE (title, model_id, updated_at, version) ON recoup.chats TO :"worker";
GRANT USAGE ON SEQUENCE recoup.chat_versions TO :"worker";
GRANT INSERT ON recoup.chat_changes TO :"worker";

GRANT SELECT ON neptun.sessions TO :"worker";
GRANT SELECT, UPDATE (name, updated_at, version) ON neptun.chat_conversations TO :"worker";
GRANT USAGE ON SEQUENCE neptun.chat_versions TO :"worker";
GRANT INSERT ON neptun.chat_changes TO :"worker";

GRANT SELECT ON leanmcp.api_keys TO :"worker";
GRANT SELECT,
      UPDATE (title, summary, model_used, system_message_id, metadata, updated_at, version)
    ON leanmcp.chats TO :"worker";
GRANT USAGE ON SEQUENCE leanmcp.chat_versions TO :"worker";
GRANT INSERT ON leanmcp.chat_changes TO :"worker";

-- The workers' settings in this database, for when they connect through a
-- pooler that refuses startup options (DATABASE_STATEMENTS=unnamed behind
-- pgbouncer in transaction mode); a direct connection sets them itself.
-- REPEATABLE READ is what keeps a request from writing through a
-- concurrent change (README, How it works): a worker behind a pooler
-- refuses to serve without it. 5 s is the workers' default
-- --statement-timeout. random_page_cost 1.1 keeps a credential table of a
-- few hundred rows read through its index (README, Performance). The
-- workers' own list: `build/bench/sqltext --settings` (cgi/db.c).
ALTER ROLE :"worker" IN DATABASE :"DBNAME" SET default_transaction_isolation = 'repeatable read';
ALTER ROLE :"worker" IN DATABASE :"DBNAME" SET statement_timeout = '5s';
ALTER ROLE :"worker" IN DATABASE :"DBNAME" SET random_page_cost = '1.1';
