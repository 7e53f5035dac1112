-- 001_common: helpers shared by all three APIs.
-- iso8601_ms(ts) renders a timestamp as the contract's Timestamp: ISO 8601, UTC, milliseconds.

CREATE FUNCTION public.iso8601_ms(timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    RETURN to_char($1 AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');

COMMENT ON FUNCTION public.iso8601_ms(timestamptz) IS
    'ISO 8601 in UTC with milliseconds, e.g. 2026-11-21T20:39:31.123Z (sub-millisecond digits are truncated)';
