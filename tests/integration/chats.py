"""One chat of each API with its caller, for the tests of issue 11 (ETag,
If-Match, GET, CORS, the audit trail), which hold for all three APIs alike
(`from chats import ...`).

`make_chat(db, api)` makes a fresh caller with its own chat, plus a chat of
another caller, and returns a `Chat`: its path and the request headers that
authenticate, a valid PATCH body and what it stores, the API's error body
shape, its row and audit rows in PostgreSQL, and its representation built
from the row, exactly as the API writes it (SPEC sections 3 to 5).
"""

import json
import random
import uuid
from dataclasses import dataclass, field

from conftest import fetch_all, fetch_one
from helpers import fmt_ts, leanmcp_error, neptun_error, recoup_error

APIS = ["recoup", "neptun", "leanmcp"]

TABLE = {"recoup": "recoup.chats", "neptun": "neptun.chat_conversations",
         "leanmcp": "leanmcp.chats"}
ACTOR = {"recoup": "account_id", "neptun": "user_id", "leanmcp": "user_id"}
# The field each API's bodies set here, and its column.
FIELD = {"recoup": ("title", "title"), "neptun": ("name", "name"),
         "leanmcp": ("title", "title")}

_rng = random.SystemRandom()


def _uid(prefix):
    return f"{prefix}_{uuid.uuid4().hex}"


def error(api, status, message):
    """The API's error body for status with message."""
    if api == "recoup":
        return recoup_error(message)
    if api == "neptun":
        return neptun_error(status, message)
    return leanmcp_error(status, message, {400: "Bad Request", 401: "Unauthorized",
                                           403: "Forbidden", 404: "Not Found",
                                           412: "Precondition Failed"}[status])


def precondition_failed(api):
    return error(api, 412, "Precondition Failed")


@dataclass
class Chat:
    api: str
    chat_id: object  # text (Recoup), int (Neptun), uuid text (LeanMCP)
    path: str
    headers: dict  # the caller's valid credential
    actor: object  # the caller, as the audit row names it
    other_path: str  # another caller's chat, with this caller's credential: 404 or 403
    missing_path: str  # no such chat: the API's 404
    extra: dict = field(default_factory=dict)

    # ---- requests ------------------------------------------------------------------------

    def body(self, value):
        """A valid PATCH body setting the API's field to value."""
        return {FIELD[self.api][0]: value}

    def patch(self, http, value, headers=None):
        h = {"content-type": "application/json", **self.headers, **(headers or {})}
        return http.request("PATCH", self.path, content=json.dumps(self.body(value)), headers=h)

    def get(self, http, headers=None, path=None):
        return http.request("GET", path or self.path, headers={**self.headers, **(headers or {})})

    # ---- rows ------------------------------------------------------------------------------

    def row(self, db):
        return fetch_one(db, f"SELECT * FROM {TABLE[self.api]} WHERE id = %s", (self.chat_id,))

    def value(self, db):
        return self.row(db)[FIELD[self.api][1]]

    def changes(self, db):
        """This chat's audit rows, oldest first."""
        return fetch_all(
            db, f"SELECT * FROM {self.api}.chat_changes WHERE chat_id = %s ORDER BY changed_at, version",
            (self.chat_id,))

    def etag(self, db):
        return f'"{self.row(db)["version"]}"'

    def representation(self, db):
        """The row as the API's 200 writes it (SPEC 3-5)."""
        r = self.row(db)
        if self.api == "recoup":
            return {"chat": {
                "id": r["id"], "sessionId": r["session_id"], "title": r["title"],
                "modelId": r["model_id"], "activeStreamId": r["active_stream_id"],
                "lastAssistantMessageAt": r["last_assistant_message_at"] and fmt_ts(
                    r["last_assistant_message_at"]),
                "createdAt": fmt_ts(r["created_at"]), "updatedAt": fmt_ts(r["updated_at"])}}
        if self.api == "neptun":
            return {"chat": {
                "id": r["id"], "neptun_user_id": r["neptun_user_id"], "name": r["name"],
                "model": r["model"], "created_at": fmt_ts(r["created_at"]),
                "updated_at": fmt_ts(r["updated_at"])}}
        return {
            "id": str(r["id"]), "userId": r["user_id"], "title": r["title"],
            "isPublic": r["is_public"], "status": r["status"],
            "createdAt": fmt_ts(r["created_at"]), "updatedAt": fmt_ts(r["updated_at"]),
            "messageCount": r["message_count"], "showcased": r["showcased"],
            "summary": r["summary"], "modelUsed": r["model_used"],
            "systemMessageId": r["system_message_id"], "metadata": r["metadata"]}


def _recoup(db):
    account, other = _uid("acct"), _uid("acct")
    for a in (account, other):
        db.execute("INSERT INTO recoup.accounts (id) VALUES (%s)", (a,))
    key = db.execute("SELECT recoup.issue_api_key(%s) AS k", (account,)).fetchone()["k"]
    session, other_session = _uid("sess"), _uid("sess")
    db.execute("INSERT INTO recoup.sessions (id, account_id) VALUES (%s, %s), (%s, %s)",
               (session, account, other_session, other))
    chat, other_chat = _uid("chat"), _uid("chat")
    db.execute("INSERT INTO recoup.chats (id, session_id, title, model_id) VALUES "
               "(%s, %s, 'Old title', 'openai/gpt-5.4'), (%s, %s, 'Other', 'm')",
               (chat, session, other_chat, other_session))
    base = "/api/sessions/{}/chats/{}"
    return Chat("recoup", chat, base.format(session, chat), {"x-api-key": key}, account,
                other_path=base.format(other_session, other_chat),
                missing_path=base.format(session, _uid("chat")),
                extra={"key": key, "session": session, "other_session": other_session})


def _neptun(db):
    user, other = (_rng.randint(10**12, 9 * 10**15) for _ in range(2))
    db.execute("INSERT INTO neptun.users (id) VALUES (%s), (%s)", (user, other))
    cookie = db.execute("SELECT neptun.issue_session(%s) AS c", (user,)).fetchone()["c"]
    chat = db.execute("INSERT INTO neptun.chat_conversations (neptun_user_id, name, model) "
                      "VALUES (%s, 'Old name', 'google/gemma') RETURNING id", (user,)).fetchone()["id"]
    other_chat = db.execute("INSERT INTO neptun.chat_conversations (neptun_user_id, name, model) "
                            "VALUES (%s, 'Other', 'm') RETURNING id", (other,)).fetchone()["id"]
    base = "/api/users/{}/chats/{}"
    return Chat("neptun", chat, base.format(user, chat), {"cookie": f"neptun-session={cookie}"},
                user, other_path=base.format(other, other_chat),
                missing_path=base.format(user, _rng.randint(10**15, 9 * 10**15)),
                extra={"user": user})


def _leanmcp(db):
    user, other = _uid("user"), _uid("user")
    db.execute("INSERT INTO leanmcp.users (id) VALUES (%s), (%s)", (user, other))
    key = db.execute("SELECT leanmcp.issue_api_key(%s) AS k", (user,)).fetchone()["k"]
    noscope = db.execute("SELECT leanmcp.issue_api_key(%s, '{other}') AS k", (user,)).fetchone()["k"]
    chat = str(db.execute("INSERT INTO leanmcp.chats (user_id, title, summary, metadata) "
                          "VALUES (%s, 'Old title', 'Old summary', '{\"a\":1}') RETURNING id",
                          (user,)).fetchone()["id"])
    deleted = str(db.execute("INSERT INTO leanmcp.chats (user_id, title, status) "
                             "VALUES (%s, 'Gone', 'deleted') RETURNING id", (user,)).fetchone()["id"])
    other_chat = str(db.execute("INSERT INTO leanmcp.chats (user_id, title) VALUES (%s, 'Other') "
                                "RETURNING id", (other,)).fetchone()["id"])
    base = "/api/chats/id/{}"
    return Chat("leanmcp", chat, base.format(chat), {"authorization": f"Bearer {key}"}, user,
                other_path=base.format(other_chat), missing_path=base.format(uuid.uuid4()),
                extra={"noscope": noscope, "deleted_path": base.format(deleted)})


def make_chat(db, api):
    return {"recoup": _recoup, "neptun": _neptun, "leanmcp": _leanmcp}[api](db)


def other_chat_status(api):
    """The status and message of a request for another caller's chat."""
    return {"recoup": (403, "Forbidden"), "neptun": (404, "Chat or user not found"),
            "leanmcp": (404, "Chat not found")}[api]


def missing_chat_message(api):
    return {"recoup": "Chat not found", "neptun": "Chat or user not found",
            "leanmcp": "Chat not found"}[api]
