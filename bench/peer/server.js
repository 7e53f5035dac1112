'use strict';
// bench/peer/server.js: the Node peer of `make bench`. The Recoup route
// (SPEC section 3) as the products' own services are built: Fastify 4 and
// node-postgres 8, one process, a pool of PEER_POOL connections (chatpatch's
// worker count), one prepared statement per request. scripts/bench.sh starts
// it on a unix socket behind the stack's nginx (HTTP/1.1 upstream keepalive).
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
// caller owns the session and the body was valid ($4). NULL in $5/$6 keeps
// the column: Recoup's schema never stores a null.
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
               EXISTS (SELECT FROM recoup.chats
                        WHERE id = $3::text AND session_id = $2::text) AS chat_found
    ), changed AS (
        UPDATE recoup.chats AS c
           SET title = coalesce($5::text, c.title),
               model_id = coalesce($6::text, c.model_id),
               updated_at = now()
          FROM checks
         WHERE $4::boolean AND checks.owner_ok
           AND c.id = $3::text AND c.session_id = $2::text
        RETURNING c.id, c.session_id, c.title, c.model_id, c.active_stream_id,
                  c.last_assistant_message_at, c.created_at, c.updated_at
    )
    SELECT checks.*, changed.*
      FROM checks LEFT JOIN changed ON true`,
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

async function updateChat(values) {
  try {
    return (await pool.query({ ...UPDATE_CHAT, values })).rows[0];
  } catch (err) {
    if (!connectionBroken(err)) throw err;
    return (await pool.query({ ...UPDATE_CHAT, values })).rows[0];
  }
}

const iso = (d) => (d === null ? null : d.toISOString());

// ---- the server --------------------------------------------------------------

const app = Fastify({ logger: false, bodyLimit: MAX_BODY, caseSensitive: true });

// The body is checked only at its step of the API's order (after the
// database checks), so Fastify must not parse or refuse it first.
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body, done) => done(null, body));

const ROUTE = '/api/sessions/:sessionId/chats/:chatId';

app.addHook('onRequest', async (request, reply) => {
  reply.header('cache-control', 'no-store');
  if (request.routeOptions.url === ROUTE) reply.header('access-control-allow-origin', '*');
  const rid = request.headers['x-request-id'];
  if (rid) reply.header('x-request-id', rid);
});

function sendError(reply, status, message) {
  if (status === 503) reply.header('retry-after', '1');
  return reply.code(status).send({ status: 'error', error: message });
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
  let row;
  try {
    row = await updateChat([
      keyHash, sessionId, chatId, changes !== null,
      changes && changes.title, changes && changes.modelId,
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
});

app.route({
  method: ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT'],
  url: ROUTE,
  handler: async (request, reply) => {
    reply.header('allow', 'PATCH');
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
