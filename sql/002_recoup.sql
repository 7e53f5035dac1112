-- 002_recoup: the Recoup schema (SPEC section 6) and its ops function
-- recoup.issue_api_key(account_id), which returns a new key once and stores only its sha256.

CREATE SCHEMA recoup;

CREATE TABLE recoup.accounts (
    id text PRIMARY KEY
);

CREATE TABLE recoup.api_keys (
    account_id text NOT NULL REFERENCES recoup.accounts,
    key_hash   bytea NOT NULL UNIQUE,
    revoked_at timestamptz
);
CREATE INDEX api_keys_account_id_idx ON recoup.api_keys (account_id);

CREATE TABLE recoup.sessions (
    id         text PRIMARY KEY,
    account_id text NOT NULL REFERENCES recoup.accounts
);
CREATE INDEX sessions_account_id_idx ON recoup.sessions (account_id);

CREATE TABLE recoup.chats (
    id                        text PRIMARY KEY,
    session_id                text NOT NULL REFERENCES recoup.sessions ON DELETE CASCADE,
    title                     text NOT NULL DEFAULT 'New chat',
    model_id                  text NOT NULL,
    active_stream_id          text,
    last_assistant_message_at timestamptz,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chats_session_id_idx ON recoup.chats (session_id);

-- Issues a new API key for an existing account and returns its plaintext,
-- which is not stored anywhere: only sha256 of its UTF-8 bytes is kept.
-- 'rk_' + 64 hex digits from two gen_random_uuid() (pg_strong_random, 244 random bits).
CREATE FUNCTION recoup.issue_api_key(account_id text) RETURNS text
    LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    secret text := 'rk_' || replace(gen_random_uuid()::text, '-', '')
                         || replace(gen_random_uuid()::text, '-', '');
BEGIN
    INSERT INTO recoup.api_keys (account_id, key_hash)
    VALUES ($1, sha256(convert_to(secret, 'UTF8')));
    RETURN secret;
END;
$$;

COMMENT ON FUNCTION recoup.issue_api_key(text) IS
    'Creates an API key for the account and returns the plaintext key (shown once; only its sha256 is stored)';
