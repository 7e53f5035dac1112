'use strict';
// bench/peer/server.js: the Node peer of `make bench`. The Recoup route
// (SPEC section 3) as the products' own services are built: Fastify 4 and
// node-postgres 8, one process, a pool of PEER_POOL connections (as many as
// chatpatch's workers may open), one prepared statement per request.
// scripts/bench.sh starts it on a unix socket behind the stack's nginx
// (HTTP/1.1 upstream keepalive).
//
// It has to give the same answers as chatpatch, or the comparison means
// nothing: bench/peercheck.py compares the two before every measurement.
//
// Environment: PEER_SOCKET (unix socket path, required), PEER_POOL (4),
// MAX_BODY (65536), STATEMENT_TIMEOUT_MS (5000), libpq's PG* variables.

const crypto = require('node:crypto');
const fs = require('node:fs');
const Fastify = require('fastify');
const pg = require('pg');

const SOCKET = process.env.PEER_SOCKET;
const POOL_SIZE = Number(process.env.PEER_POOL || 4);
const MAX_BODY = Number(process.env.MAX_BODY || 65536);
const STATEMENT_TIMEOUT_MS = Number(process.env.STATEMENT_TIMEOUT_MS || 5000);
const MAX_DEPTH = 32;

// Auth, ownership and the update in one round trip. The key, the session
// and the chat are looked up side by side so that the handler can tell
// which check failed, in the API's order; the update runs only when the
// caller owns the session and the body was valid ($4), and only on the
// version If-Match names ($7, NULL: any); NULL in $5/$6 keeps the column:
// Recoup's schema never stores a null. As chatpatch does (issue 11), it
// takes a new version and appends the audit row ($8: the request id) in the
// same statement, the old values from the chat's own row.
const UPDATE_CHAT = {
  name: 'recoup_update_chat',
  text: `
    WITH key AS (
        SELECT account_id
          FROM recoup.api_keys
         WHERE key_hash = $1::bytea
           AND (revoked_at IS NULL OR revoked_at > now())
    ), session AS (
        SELECT account_id FROM recoup.sessions WHERE id = $2::text
    ), checks AS (
        SELECT EXISTS (SELECT FROM key) AS key_ok,
               EXISTS (SELECT FROM session) AS session_found,
               EXISTS (SELECT FROM key JOIN session USING (account_id)) AS owner_ok,
               (SELECT version FROM recoup.chats
                 WHERE id = $3::text AND session_id = $2::text) AS current_version,
               (SELECT account_id FROM key) AS account_id
    ), changed AS (
        UPDATE recoup.chats AS c
           SET title = coalesce($5::text, c.title),
               model_id = coalesce($6::text, c.model_id),
               updated_at = now(),
               version = nextval('recoup.chat_versions')
          FROM checks, recoup.chats AS o
         WHERE $4::boolean AND checks.owner_ok
           AND c.id = $3::text AND c.session_id = $2::text AND o.id = c.id
           AND ($7::bigint[] IS NULL OR c.version = ANY ($7::bigint[]))
        RETURNING c.id, c.session_id, c.title, c.model_id, c.active_stream_id,
                  c.last_assistant_message_at, c.created_at, c.updated_at, c.version,
                  CASE WHEN $5::text IS NOT NULL THEN jsonb_build_object('title',
                       jsonb_build_object('old', o.title, 'new', c.title)) ELSE '{}' END
                  || CASE WHEN $6::text IS NOT NULL THEN jsonb_build_object('modelId',
                       jsonb_build_object('old', o.model_id, 'new', c.model_id))
                     ELSE '{}' END AS changes
    ), audit AS (
        INSERT INTO recoup.chat_changes (chat_id, account_id, version, changes, request_id)
        SELECT changed.id, checks.account_id, changed.version, changed.changes, $8::text
          FROM changed, checks
    )
    SELECT checks.key_ok, checks.session_found, checks.owner_ok,
           checks.current_version IS NOT NULL AS chat_found,
           coalesce(changed.version, checks.current_version)::text AS etag_version,
           changed.id, changed.session_id, changed.title, changed.model_id,
           changed.active_stream_id, changed.last_assistant_message_at,
           changed.created_at, changed.updated_at
      FROM checks LEFT JOIN changed ON true`,
};

// GET: the same checks, and the chat as it is.
const READ_CHAT = {
  name: 'recoup_read_chat',
  text: `
    WITH key AS (
        SELECT account_id
          FROM recoup.api_keys
         WHERE key_hash = $1::bytea
           AND (revoked_at IS NULL OR revoked_at > now())
    ), session AS (
        SELECT account_id FROM recoup.sessions WHERE id = $2::text
    ), checks AS (
        SELECT EXISTS (SELECT FROM key) AS key_ok,
               EXISTS (SELECT FROM session) AS session_found,
               EXISTS (SELECT FROM key JOIN session USING (account_id)) AS owner_ok
    )
    SELECT checks.*, c.id IS NOT NULL AS chat_found, c.version::text AS etag_version,
           c.id, c.session_id, c.title, c.model_id, c.active_stream_id,
           c.last_assistant_message_at, c.created_at, c.updated_at
      FROM checks LEFT JOIN recoup.chats c
        ON checks.owner_ok AND c.id = $3::text AND c.session_id = $2::text`,
};

const pool = new pg.Pool({
  max: POOL_SIZE,
  idleTimeoutMillis: 0, // keep the connections, as chatpatch's workers do
  statement_timeout: STATEMENT_TIMEOUT_MS,
  query_timeout: STATEMENT_TIMEOUT_MS + 1000,
});
// An idle client whose backend died: the pool drops it; nothing to answer.
pool.on('error', () => {});

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ---- request checks, in Recoup's order ----------------------------------

// Exactly one of x-api-key and Authorization: Bearer (an empty header is
// no header, as Express sees it).
function credential(headers) {
  const apiKey = headers['x-api-key'] || '';
  const authorization = headers.authorization || '';
  if (!apiKey === !authorization) {
    throw new HttpError(401, 'Exactly one of x-api-key or Authorization must be provided');
  }
  if (apiKey) return apiKey;
  const m = /^bearer[ \t]+(.*?)[ \t]*$/is.exec(authorization);
  if (!m || !m[1]) throw new HttpError(401, 'Authorization header with Bearer token required');
  return m[1];
}

function isJsonMediaType(contentType) {
  const essence = (contentType || '').split(';')[0].trim().toLowerCase();
  return essence === 'application/json' || /^application\/[^/]+\+json$/.test(essence);
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const BAD_STRING = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

// SPEC section 2: no NUL, no lone surrogate, at most 32 levels of
// containers (the top level is level 1). JSON.parse checks none of these.
function acceptable(value, depth) {
  if (typeof value === 'string') return !BAD_STRING.test(value);
  if (value === null || typeof value !== 'object') return true;
  if (depth > MAX_DEPTH) return false;
  if (Array.isArray(value)) return value.every((v) => acceptable(v, depth + 1));
  for (const k of Object.keys(value)) {
    if (BAD_STRING.test(k) || !acceptable(value[k], depth + 1)) return false;
  }
  return true;
}

function jsonType(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

const FIELDS = { title: 'title', modelId: 'modelId' };

// The body's changes ({title, modelId}, null where not given), or the 4xx
// that the body step answers: zod's first problem, as the real service words it.
function parseBody(contentType, raw) {
  if (!isJsonMediaType(contentType)) throw new HttpError(415, 'Content-Type must be application/json');
  let body;
  try {
    body = JSON.parse(utf8.decode(raw || Buffer.alloc(0)));
  } catch {
    throw new HttpError(400, 'Invalid JSON body');
  }
  if (!acceptable(body, 1)) throw new HttpError(400, 'Invalid JSON body');
  if (jsonType(body) !== 'object') {
    throw new HttpError(400, `Invalid input: expected object, received ${jsonType(body)}`);
  }
  const changes = { title: null, modelId: null };
  for (const field of Object.keys(FIELDS)) {
    if (body[field] === undefined) continue;
    if (typeof body[field] !== 'string') {
      throw new HttpError(400, `Invalid input: expected string, received ${jsonType(body[field])}`);
    }
    changes[field] = body[field].trim();
    if (changes[field] === '') throw new HttpError(400, `${field} cannot be empty`);
  }
  // zod quotes the keys without escaping them.
  const unknown = Object.keys(body).filter((k) => !(k in FIELDS));
  if (unknown.length === 1) throw new HttpError(400, `Unrecognized key: "${unknown[0]}"`);
  if (unknown.length > 1) {
    throw new HttpError(400, `Unrecognized keys: ${unknown.map((k) => `"${k}"`).join(', ')}`);
  }
  if (changes.title === null && changes.modelId === null) {
    throw new HttpError(400, 'At least one field is required');
  }
  return changes;
}

// ---- the database ------------------------------------------------------------

// A connection that broke (server restarted, backend killed) is retried once
// on a fresh one; an error of the statement itself is not.
function connectionBroken(err) {
  return !err.code || err.code.startsWith('08') || err.code.startsWith('57P');
}

// One statement, one round trip, as before issue 11 (READ COMMITTED: the
// UPDATE re-checks its WHERE, If-Match's version included, on a row another
// transaction changed meanwhile).
async function run(statement, values) {
  try {
    return (await pool.query({ ...statement, values })).rows[0];
  } catch (err) {
    if (!connectionBroken(err)) throw err;
    return (await pool.query({ ...statement, values })).rows[0];
  }
}

// The versions a strong comparison with If-Match can match, as a bigint[]
// literal; null for no condition (no header, or "*"). A malformed list names
// none.
function ifMatchVersions(header) {
  const value = (header || '').trim();
  if (value === '' || value === '*') return null;
  const versions = [];
  for (const part of value.split(',')) {
    const tag = part.trim();
    if (tag === '') continue;
    const m = /^(W\/)?"([\x21\x23-\x7e\x80-\xff]*)"$/.exec(tag);
    if (!m) return '{}';
    if (!m[1] && /^[1-9][0-9]{0,18}$/.test(m[2]) && BigInt(m[2]) <= 9223372036854775807n) versions.push(m[2]);
  }
  return `{${versions.join(',')}}`;
}

// Whether If-None-Match names the version (weak comparison), or is "*".
function noneMatch(header, version) {
  const value = (header || '').trim();
  if (value === '*') return true;
  return value.split(',').some((t) => t.trim().replace(/^W\//, '') === `"${version}"`);
}

const iso = (d) => (d === null ? null : d.toISOString());

// ---- the server --------------------------------------------------------------

const app = Fastify({ logger: false, bodyLimit: MAX_BODY, caseSensitive: true, exposeHeadRoutes: false });

// The body is checked only at its step of the API's order (after the
// database checks), so Fastify must not parse or refuse it first.
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body, done) => done(null, body));

const ROUTE = '/api/sessions/:sessionId/chats/:chatId';

app.addHook('onRequest', async (request, reply) => {
  reply.header('cache-control', 'no-store');
  if (request.routeOptions.url === ROUTE) {
    reply.header('access-control-allow-origin', '*');
    if (request.method !== 'OPTIONS') reply.header('access-control-expose-headers', 'ETag');
  }
  const rid = request.headers['x-request-id'];
  if (rid) reply.header('x-request-id', rid);
});

function sendError(reply, status, message) {
  if (status === 503) reply.header('retry-after', '1');
  return reply.code(status).send({ status: 'error', error: message });
}

function representation(row) {
  return {
    chat: {
      id: row.id,
      sessionId: row.session_id,
      title: row.title,
      modelId: row.model_id,
      activeStreamId: row.active_stream_id,
      lastAssistantMessageAt: iso(row.last_assistant_message_at),
      createdAt: iso(row.created_at),
      updatedAt: iso(row.updated_at),
    },
  };
}

app.patch(ROUTE, async (request, reply) => {
  const { sessionId, chatId } = request.params;
  if (!validSegment(sessionId) || !validSegment(chatId)) return notFound(request, reply);
  let keyHash;
  try {
    keyHash = crypto.createHash('sha256').update(credential(request.headers), 'utf8').digest();
  } catch (err) {
    return sendError(reply, err.status, err.message);
  }
  let changes = null;
  let bodyError = null;
  try {
    changes = parseBody(request.headers['content-type'], request.body);
  } catch (err) {
    bodyError = err;
  }
  const versions = ifMatchVersions(request.headers['if-match']);
  let row;
  try {
    row = await run(UPDATE_CHAT, [
      keyHash, sessionId, chatId, changes !== null,
      changes && changes.title, changes && changes.modelId, versions,
      request.headers['x-request-id'] || '',
    ]);
  } catch (err) {
    console.error(`recoup_update_chat: ${err.message}`);
    return sendError(reply, 503, 'Service Unavailable');
  }
  if (!row.key_ok) return sendError(reply, 401, 'Unauthorized');
  if (!row.session_found) return sendError(reply, 404, 'Session not found');
  if (!row.owner_ok) return sendError(reply, 403, 'Forbidden');
  if (!row.chat_found) return sendError(reply, 404, 'Chat not found');
  if (bodyError) return sendError(reply, bodyError.status, bodyError.message);
  reply.header('etag', `"${row.etag_version}"`);
  if (row.id === null) return sendError(reply, 412, 'Precondition Failed');
  return representation(row);
});

app.get(ROUTE, async (request, reply) => {
  const { sessionId, chatId } = request.params;
  if (!validSegment(sessionId) || !validSegment(chatId)) return notFound(request, reply);
  let keyHash;
  try {
    keyHash = crypto.createHash('sha256').update(credential(request.headers), 'utf8').digest();
  } catch (err) {
    return sendError(reply, err.status, err.message);
  }
  let row;
  try {
    row = await run(READ_CHAT, [keyHash, sessionId, chatId]);
  } catch (err) {
    console.error(`recoup_read_chat: ${err.message}`);
    return sendError(reply, 503, 'Service Unavailable');
  }
  if (!row.key_ok) return sendError(reply, 401, 'Unauthorized');
  if (!row.session_found) return sendError(reply, 404, 'Session not found');
  if (!row.owner_ok) return sendError(reply, 403, 'Forbidden');
  if (!row.chat_found) return sendError(reply, 404, 'Chat not found');
  reply.header('etag', `"${row.etag_version}"`);
  const ifMatch = ifMatchVersions(request.headers['if-match']);
  if (ifMatch !== null && !ifMatch.slice(1, -1).split(',').includes(row.etag_version)) {
    return sendError(reply, 412, 'Precondition Failed');
  }
  if (noneMatch(request.headers['if-none-match'], row.etag_version)) {
    return reply.code(304).removeHeader('content-type').send();
  }
  return representation(row);
});

// A browser's CORS preflight: no credential, no database.
app.options(ROUTE, async (request, reply) => {
  reply.header('access-control-allow-methods', 'GET, PATCH, OPTIONS');
  reply.header('access-control-allow-headers', 'authorization, content-type, if-match, if-none-match, x-api-key');
  reply.header('access-control-max-age', '86400');
  return reply.code(204).send();
});

app.route({
  method: ['DELETE', 'HEAD', 'POST', 'PUT'],
  url: ROUTE,
  handler: async (request, reply) => {
    reply.header('allow', 'GET, PATCH, OPTIONS');
    return sendError(reply, 405, 'Method Not Allowed');
  },
});

// A decoded "/" or NUL, or an empty segment, makes the path unknown (SPEC 1).
function validSegment(s) {
  return s !== '' && !s.includes('/') && !s.includes('\u0000');
}

function notFound(request, reply) {
  return reply.code(404).send({ statusCode: 404, error: 'Not Found' });
}

app.setNotFoundHandler(notFound);

app.setErrorHandler((err, request, reply) => {
  const status = err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
  const reason = status === 413 ? 'Request body too large' : (status === 500 ? 'Internal Server Error' : 'Bad Request');
  return sendError(reply, status, reason);
});

async function main() {
  if (!SOCKET) throw new Error('PEER_SOCKET is not set');
  fs.rmSync(SOCKET, { force: true });
  await app.listen({ path: SOCKET });
  fs.chmodSync(SOCKET, 0o666); // nginx's workers run as another user
  const stop = async () => {
    await app.close();
    await pool.end();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
