-- bench/data.sql: the data set of `make bench` (bench/run.py), loaded
-- into the bench's private stack after the migrations and sql/demo.sql.
-- psql variables: n (chats per API), and the three plaintext credentials
-- recoup_key, neptun_cookie, leanmcp_key (only their sha256 is stored).
--
-- Every id is a function of a chat number i in 1..n, so that both wrk's Lua
-- script and pgbench's script (which has integer arithmetic and no strings)
-- can rotate over them (bench/params.py states the same functions):
--   Recoup   one account with the key; session (1000000 + i)::text holding
--            chat (2000000 + i)::text (ids are text: decimal ones here)
--   Neptun   user 1000000 with the session cookie; chats 1000000 + i
--   LeanMCP  user user_bench with the key (scope chat); chats
--            00000000-0000-4000-8000-<i, 12 digits>
\set ON_ERROR_STOP 1

BEGIN;

-- The rows are consistent by construction: skipping the foreign key
-- triggers halves the load (2,000,000 chats per API in about 30 s).
SET LOCAL session_replication_role = replica;

INSERT INTO recoup.accounts (id) VALUES ('acct_bench');
INSERT INTO recoup.api_keys (account_id, key_hash)
    VALUES ('acct_bench', sha256(convert_to(:'recoup_key', 'UTF8')));
INSERT INTO recoup.sessions (id, account_id)
    SELECT (1000000 + i)::text, 'acct_bench' FROM generate_series(1, :n) i;
INSERT INTO recoup.chats (id, session_id, title, model_id)
    SELECT (2000000 + i)::text, (1000000 + i)::text, 'New chat', 'openai/gpt-5.4'
      FROM generate_series(1, :n) i;

INSERT INTO neptun.users (id) VALUES (1000000);
INSERT INTO neptun.sessions (token_hash, user_id, expires_at)
    VALUES (sha256(convert_to(:'neptun_cookie', 'UTF8')), 1000000,
            now() + interval '10 years');
INSERT INTO neptun.chat_conversations (id, neptun_user_id, name, model)
    SELECT 1000000 + i, 1000000, 'New chat', 'google/gemma-2-27b-it'
      FROM generate_series(1, :n) i;

INSERT INTO leanmcp.users (id) VALUES ('user_bench');
INSERT INTO leanmcp.api_keys (user_id, key_hash, scopes)
    VALUES ('user_bench', sha256(convert_to(:'leanmcp_key', 'UTF8')), '{chat}');
INSERT INTO leanmcp.chats (id, user_id, title, status)
    SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'user_bench',
           'New chat', 'active'
      FROM generate_series(1, :n) i;

-- Other callers, so that the credential tables have the size of a real
-- service's (one account, user or key per 100 chats) and the plans are
-- the ones it gets: index scans (var/bench/explain.txt).
INSERT INTO recoup.accounts (id) SELECT 'acct_other_' || i FROM generate_series(1, :n / 100) i;
INSERT INTO recoup.api_keys (account_id, key_hash)
    SELECT 'acct_other_' || i, sha256(convert_to('other-recoup-key-' || i, 'UTF8'))
      FROM generate_series(1, :n / 100) i;
INSERT INTO neptun.users (id) SELECT 2000000 + i FROM generate_series(1, :n / 100) i;
INSERT INTO neptun.sessions (token_hash, user_id, expires_at)
    SELECT sha256(convert_to('other-neptun-session-' || i, 'UTF8')), 2000000 + i,
           now() + interval '10 years'
      FROM generate_series(1, :n / 100) i;
INSERT INTO leanmcp.users (id) SELECT 'user_other_' || i FROM generate_series(1, :n / 100) i;
INSERT INTO leanmcp.api_keys (user_id, key_hash, scopes)
    SELECT 'user_other_' || i, sha256(convert_to('other-leanmcp-key-' || i, 'UTF8')), '{chat}'
      FROM generate_series(1, :n / 100) i;

COMMIT;

-- Fresh statistics, so that every target starts from the same plans, and
-- the load's WAL flushed before the first measurement rather than during it.
VACUUM ANALYZE recoup.api_keys, recoup.sessions, recoup.chats,
               neptun.sessions, neptun.chat_conversations,
               leanmcp.api_keys, leanmcp.chats;
CHECKPOINT;
