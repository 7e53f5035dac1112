-- 004_leanmcp: the LeanMCP schema (SPEC section 6) and its ops function
-- leanmcp.issue_api_key(user_id, scopes), which returns a new key once and stores only its sha256.

CREATE SCHEMA leanmcp;

CREATE TABLE leanmcp.users (
    id text PRIMARY KEY
);

CREATE TABLE leanmcp.api_keys (
    user_id    text NOT NULL REFERENCES leanmcp.users,
    key_hash   bytea NOT NULL UNIQUE,
    scopes     text[] NOT NULL DEFAULT '{chat}',
    revoked_at timestamptz
);
CREATE INDEX api_keys_user_id_idx ON leanmcp.api_keys (user_id);

CREATE TABLE leanmcp.chats (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           text NOT NULL REFERENCES leanmcp.users,
    title             text NOT NULL,
    is_public         boolean NOT NULL DEFAULT false,
    status            text NOT NULL DEFAULT 'active'
                      CHECK (status IN ('active', 'archived', 'deleted')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    message_count     integer NOT NULL DEFAULT 0 CHECK (message_count >= 0),
    showcased         boolean NOT NULL DEFAULT false,
    summary           text,
    model_used        text,
    system_message_id text,
    metadata          jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX chats_user_id_idx ON leanmcp.chats (user_id);

-- Issues a new API key with the given scopes for an existing user and returns
-- its plaintext, which is not stored: only sha256 of its UTF-8 bytes is kept.
-- 'lm_' + 64 hex digits from two gen_random_uuid() (pg_strong_random, 244 random bits).
CREATE FUNCTION leanmcp.issue_api_key(user_id text, scopes text[] DEFAULT '{chat}') RETURNS text
    LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    secret text := 'lm_' || replace(gen_random_uuid()::text, '-', '')
                         || replace(gen_random_uuid()::text, '-', '');
BEGIN
    INSERT INTO leanmcp.api_keys (user_id, key_hash, scopes)
    VALUES ($1, sha256(convert_to(secret, 'UTF8')), $2);
    RETURN secret;
END;
$$;

COMMENT ON FUNCTION leanmcp.issue_api_key(text, text[]) IS
    'Creates an API key with the given scopes for the user and returns the plaintext key (shown once; only its sha256 is stored)';
