"""bench/stmtcost.py: the statements and values it feeds a single-user
backend, the check that they updated something, and its arithmetic."""

import os
import re
import unittest

import params
import stmtcost

SQLTEXT = os.path.join(os.path.dirname(__file__), "..", "..", "build", "bench", "sqltext")


class PeerTest(unittest.TestCase):
    def test_statement_is_the_update_with_its_audit_row(self):
        with open(stmtcost.PEER_SOURCE) as f:
            sql = stmtcost.peer_statement(f.read())
        self.assertIn("UPDATE recoup.chats", sql)
        self.assertIn("INSERT INTO recoup.chat_changes", sql)
        self.assertEqual(max(int(n) for n in re.findall(r"\$([0-9]+)", sql)), 8)

    def test_statement_missing(self):
        with self.assertRaises(ValueError):
            stmtcost.peer_statement("const READ_CHAT = { text: `SELECT 1` };")

    def test_values_name_chat_i(self):
        v = stmtcost.peer_values(7)
        self.assertEqual(v[:3], [params.hash_text("bench-recoup-key"), "1000007", "2000007"])
        self.assertEqual(v[4:7], [params.TITLE, params.MODEL, None])


class InputTest(unittest.TestCase):
    def test_api_values_follow_the_chat(self):
        values = params.statement_values("leanmcp", SQLTEXT)
        one, two = (stmtcost.api_values("leanmcp", values, i) for i in (1, 2))
        self.assertIn("00000000-0000-4000-8000-000000000001", one)
        self.assertIn("00000000-0000-4000-8000-000000000002", two)
        self.assertEqual(len(one), len(values))

    def test_single_user_input(self):
        text = stmtcost.single_user_input("SELECT $1::text, $2::text;\n",
                                          lambda i: [f"it's {i}", None], 2)
        self.assertEqual(text, "PREPARE s AS SELECT $1::text, $2::text;\n\n"
                               "EXECUTE s('it''s 1', NULL);\n\n"
                               "EXECUTE s('it''s 2', NULL);\n\n")


class OutputTest(unittest.TestCase):
    ROW = f'\t 3: case = "(2000001,1000001,"{params.TITLE}",bench/model-1,,)"\t(typeid = 2249)\n'

    def test_every_chat_updated(self):
        self.assertTrue(stmtcost.updated_every_chat(self.ROW * 3, 3))

    def test_a_refused_check_is_not_an_update(self):
        self.assertFalse(stmtcost.updated_every_chat(self.ROW * 2, 3))
        self.assertFalse(stmtcost.updated_every_chat(
            self.ROW * 3 + '\t 1: failure = "key"\t(typeid = 25)\n', 3))

    def test_callgrind_total(self):
        self.assertEqual(stmtcost.callgrind_total("events: Ir\nsummary: 1234\n"), 1234)
        with self.assertRaises(ValueError):
            stmtcost.callgrind_total("events: Ir\n")

    def test_settings_args(self):
        self.assertEqual(stmtcost.settings_args([("a", "b c"), ("d", "1.1")]),
                         ["-c", "a=b c", "-c", "d=1.1"])

    def test_per_execution(self):
        self.assertEqual(stmtcost.per_execution(100, 1_000_000, 600, 6_000_000), 10_000)


if __name__ == "__main__":
    unittest.main()
