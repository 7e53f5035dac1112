-- fixtures.sql: rows beside the demo data (sql/demo.sql) that the memcheck
-- corpus (tests/memcheck/requests/) and the soak load (scripts/soak.sh) need
-- to reach every error row of SPEC sections 3-5: another owner's session
-- and chats, revoked keys, a key without the chat scope, an expired Neptun
-- session, a deleted LeanMCP chat. Loaded after `stack.sh up` into the
-- private stack's database only. Idempotent.

-- Recoup: account acct_mc_other owns session sess_mc_other and its chat
-- chat_mc_other; demo-recoup-revoked is a revoked key of acct_demo.
INSERT INTO recoup.accounts (id) VALUES ('acct_mc_other') ON CONFLICT DO NOTHING;
INSERT INTO recoup.sessions (id, account_id) VALUES ('sess_mc_other', 'acct_mc_other')
    ON CONFLICT DO NOTHING;
INSERT INTO recoup.chats (id, session_id, title, model_id)
    VALUES ('chat_mc_other', 'sess_mc_other', 'Other chat', 'openai/gpt-5.4')
    ON CONFLICT DO NOTHING;
INSERT INTO recoup.api_keys (account_id, key_hash, revoked_at)
    VALUES ('acct_demo', sha256(convert_to('demo-recoup-revoked', 'UTF8')), now() - interval '1 day')
    ON CONFLICT (key_hash) DO UPDATE SET revoked_at = EXCLUDED.revoked_at;

-- Neptun: user 2 with chat 900002; cookie demo-neptun-expired is user 1's,
-- expired.
INSERT INTO neptun.users (id) VALUES (2) ON CONFLICT DO NOTHING;
INSERT INTO neptun.chat_conversations (id, neptun_user_id, name, model)
    VALUES (900002, 2, 'Other chat', 'google/gemma-2-27b-it')
    ON CONFLICT DO NOTHING;
INSERT INTO neptun.sessions (token_hash, user_id, expires_at)
    VALUES (sha256(convert_to('demo-neptun-expired', 'UTF8')), 1, now() - interval '1 day')
    ON CONFLICT (token_hash) DO UPDATE SET expires_at = EXCLUDED.expires_at;

-- LeanMCP: demo-leanmcp-noscope lacks the chat scope, demo-leanmcp-revoked
-- is revoked; chat 0000...0d is user_demo's but deleted; chat 0000...0e
-- belongs to user_mc_other.
INSERT INTO leanmcp.users (id) VALUES ('user_mc_other') ON CONFLICT DO NOTHING;
INSERT INTO leanmcp.api_keys (user_id, key_hash, scopes)
    VALUES ('user_demo', sha256(convert_to('demo-leanmcp-noscope', 'UTF8')), '{read}')
    ON CONFLICT (key_hash) DO UPDATE SET scopes = EXCLUDED.scopes, revoked_at = NULL;
INSERT INTO leanmcp.api_keys (user_id, key_hash, revoked_at)
    VALUES ('user_demo', sha256(convert_to('demo-leanmcp-revoked', 'UTF8')), now() - interval '1 day')
    ON CONFLICT (key_hash) DO UPDATE SET revoked_at = EXCLUDED.revoked_at;
INSERT INTO leanmcp.chats (id, user_id, title, status)
    VALUES ('00000000-0000-4000-8000-00000000000d', 'user_demo', 'Deleted chat', 'deleted')
    ON CONFLICT DO NOTHING;
INSERT INTO leanmcp.chats (id, user_id, title)
    VALUES ('00000000-0000-4000-8000-00000000000e', 'user_mc_other', 'Other chat')
    ON CONFLICT DO NOTHING;
