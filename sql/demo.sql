-- demo.sql: the demo data of SPEC section 7, loaded by `make run` / `make up` after the migrations.
-- Idempotent: run it as often as you like (psql -X -1 -v ON_ERROR_STOP=1 -f sql/demo.sql).
-- Credentials are re-enabled on every run (un-revoked, expiry refreshed); the demo chats are
-- inserted once and never reset, so edits made through the APIs survive a re-run.

-- Recoup: key demo-recoup-key, account acct_demo, session sess_demo, chat chat_demo.
INSERT INTO recoup.accounts (id) VALUES ('acct_demo')
    ON CONFLICT (id) DO NOTHING;
INSERT INTO recoup.api_keys (account_id, key_hash)
    VALUES ('acct_demo', sha256(convert_to('demo-recoup-key', 'UTF8')))
    ON CONFLICT (key_hash) DO UPDATE
        SET account_id = EXCLUDED.account_id, revoked_at = NULL;
INSERT INTO recoup.sessions (id, account_id) VALUES ('sess_demo', 'acct_demo')
    ON CONFLICT (id) DO UPDATE SET account_id = EXCLUDED.account_id;
INSERT INTO recoup.chats (id, session_id, title, model_id)
    VALUES ('chat_demo', 'sess_demo', 'New chat', 'openai/gpt-5.4')
    ON CONFLICT (id) DO NOTHING;

-- Neptun: cookie neptun-session=demo-neptun-session, user 1, chat 1.
INSERT INTO neptun.users (id) VALUES (1)
    ON CONFLICT (id) DO NOTHING;
INSERT INTO neptun.sessions (token_hash, user_id, expires_at)
    VALUES (sha256(convert_to('demo-neptun-session', 'UTF8')), 1, now() + interval '10 years')
    ON CONFLICT (token_hash) DO UPDATE
        SET user_id = EXCLUDED.user_id, expires_at = EXCLUDED.expires_at;
INSERT INTO neptun.chat_conversations (id, neptun_user_id, name, model)
    VALUES (1, 1, 'Demo chat', 'google/gemma-2-27b-it')
    ON CONFLICT (id) DO NOTHING;
-- An explicit id does not advance the identity: move it past the largest id (never
-- backwards) so that later inserts without an id do not collide with the demo chat.
DO $$
DECLARE
    seq regclass := pg_get_serial_sequence('neptun.chat_conversations', 'id')::regclass;
BEGIN
    PERFORM setval(seq, GREATEST((SELECT max(id) FROM neptun.chat_conversations),
                                 pg_sequence_last_value(seq), 1));
END;
$$;

-- LeanMCP: key demo-leanmcp-key (scope chat), user user_demo, chat c1a83d84-....
INSERT INTO leanmcp.users (id) VALUES ('user_demo')
    ON CONFLICT (id) DO NOTHING;
INSERT INTO leanmcp.api_keys (user_id, key_hash, scopes)
    VALUES ('user_demo', sha256(convert_to('demo-leanmcp-key', 'UTF8')), '{chat}')
    ON CONFLICT (key_hash) DO UPDATE
        SET user_id = EXCLUDED.user_id, scopes = EXCLUDED.scopes, revoked_at = NULL;
INSERT INTO leanmcp.chats (id, user_id, title, status)
    VALUES ('c1a83d84-7154-464c-bd19-a9f10e0a067f', 'user_demo', 'Demo chat', 'active')
    ON CONFLICT (id) DO NOTHING;
