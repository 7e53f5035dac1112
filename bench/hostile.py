"""bench/hostile.py: the "hostile body" rows of `make bench` (issue 8):
bodies as large and as costly to parse as the limits allow, sent with an
unknown credential (answered before the body is looked at: 401) and with a
good one (the body is parsed and refused: 400).

  keys  8,191 unknown keys, {"k00":0,"k01":0,...}: the most members of 8
        bytes ('"kXX":0,') that fit in 64 KiB, padded with spaces before the
        closing brace to 65,535 bytes. Key names are three characters, a
        letter then two base-62 digits, so none looks like an array index
        (JavaScript would reorder those).
  deep  arrays nested as deep as SPEC section 2 accepts: the top-level
        object is level 1, so each [[[...]]] is 31 arrays deep and reaches
        level 32; as many of them as fit in one array under key "k",
        padded to 65,535 bytes.
"""

LIMIT = 65536  # the default body limit (SPEC section 2); bodies stay under it
MAX_DEPTH = 32
DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
LETTERS = "klmnopqrstuvwxyzabcdefghij"


def key(i):
    """Three characters: a letter, then i in two base-62 digits."""
    first, rest = divmod(i, len(DIGITS) ** 2)
    return LETTERS[first] + DIGITS[rest // len(DIGITS)] + DIGITS[rest % len(DIGITS)]


def _pad(text, size):
    """text with spaces before its last character up to size bytes."""
    assert len(text) <= size, (len(text), size)
    return text[:-1] + " " * (size - len(text)) + text[-1]


def many_keys(size=LIMIT - 1):
    member = len('"kXX":0,')
    count = (size - 2 + 1) // member  # the last member has no comma
    body = "{" + ",".join(f'"{key(i)}":0' for i in range(count)) + "}"
    return _pad(body, size)


def deep_arrays(size=LIMIT - 1, depth=MAX_DEPTH):
    arrays = depth - 1  # the top-level object is level 1
    unit = "[" * (arrays - 1) + "]" * (arrays - 1)
    head, tail = '{"k":[', "]}"
    count = (size - len(head) - len(tail) + 1) // (len(unit) + 1)
    body = head + ",".join([unit] * count) + tail
    return _pad(body, size)


BODIES = {"keys": many_keys, "deep": deep_arrays}
