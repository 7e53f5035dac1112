"""bench/explain.py: the plan PostgreSQL runs for each API's statement, on
the bench's data, as the workers run it (prepared, generic plan after the
first executions: plan_cache_mode = force_generic_plan), with the values of
the bench's requests. `make bench` writes them to var/bench/explain.txt and
result.txt says whether every table is read by an index."""

import re

import params

SEQ_SCAN = re.compile(r"Seq Scan on (\S+)")


def sql_literal(text):
    return "'" + text.replace("'", "''") + "'"


def sql_arg(text):
    """A bound value as an EXECUTE argument: a literal, or NULL for None."""
    return "NULL" if text is None else sql_literal(text)


def bound_texts(values, path_ids):
    """The texts (None for NULL) values as in params.statement_values() bind,
    in parameter order, with the request's path ids path_ids[k]."""
    return [path_ids[v.k] if isinstance(v, params.PathParam) else v.value
            for _, v in sorted(values.items())]


def explain(psql, name, sql, values, path_ids):
    """EXPLAIN of one statement; values as in params.statement_values(), with
    path ids of chat 1 (path_ids[k])."""
    args = [sql_arg(text) for text in bound_texts(values, path_ids)]
    script = (f"SET plan_cache_mode = force_generic_plan;\n"
              f"PREPARE s AS {sql};\n"
              f"EXPLAIN (COSTS OFF) EXECUTE s({', '.join(args)});\n"
              "ROLLBACK;\n")
    # In a transaction that is rolled back: EXPLAIN does not run an UPDATE,
    # but nothing here may change the bench's data either way.
    return psql("BEGIN;\n" + script)


def seq_scans(plan):
    return SEQ_SCAN.findall(plan)


def report(plans):
    """Lines for result.txt: each API's tables read by a sequential scan."""
    lines = []
    for name, plan in plans.items():
        scans = seq_scans(plan)
        lines.append(f"  {name}: " + ("index scans only" if not scans
                                      else "SEQUENTIAL SCAN on " + ", ".join(scans)))
    return lines
