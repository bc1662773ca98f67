#!/usr/bin/env python3
"""Writes an import file (the shape of src/demo.toml) with N children, each
with its own cancel code, for `mensa load --codes FILE` and
scripts/capacity.sh: thousands of callers must not share three codes.

    scripts/gen-load-data.py N YEAR > load-data.toml

YEAR is the first year of the school year (2026 for December 2026). The
ente, schools and parents are the demo's, so `serve --demo` and this file
agree; children get user codes 7000000+i and cancel codes 9000000+i, and
valid fiscal codes (the check character computed as DM 23/12/1976 says).
"""
import re
import sys
from pathlib import Path

ODD = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14,
       16, 10, 22, 25, 24, 23]
MONTHS = "ABCDEHLMPRST"


def value(c):
    return ord(c) - ord("0") if c.isdigit() else ord(c) - ord("A")


def check_char(first15):
    total = 0
    for i, c in enumerate(first15):
        total += ODD[value(c) % 26] if i % 2 == 0 else value(c)
    return chr(ord("A") + total % 26)


def fiscal_code(i):
    # Surname and name letters from i, born 2018-2020, in Cassino (C034).
    letters = "BCDFGLMNPRSTVZ"
    s = "".join(letters[(i // 14 ** k) % 14] for k in range(6))
    year = 18 + i % 3
    month = MONTHS[i % 12]
    day = 1 + i % 28
    first15 = f"{s}{year:02d}{month}{day:02d}C034"
    return first15 + check_char(first15)


def main():
    n = int(sys.argv[1])
    year = int(sys.argv[2])
    demo = (Path(__file__).resolve().parent.parent / "src" / "demo.toml").read_text()
    demo = demo.replace("{Y1}", str(year + 1)).replace("{Y}", str(year))
    # Keep everything before the first child; the demo's children follow ours.
    head, _, children = demo.partition("[[children]]")
    out = [head.rstrip(), ""]
    out.append("[[children]]" + children.split("[[news]]")[0].rstrip())
    for i in range(n):
        out.append(
            f"""
[[children]]
user_code = "{7000000 + i}"
cancel_code = "{9000000 + i}"
first_name = "Load"
last_name = "Caller{i}"
fiscal_code = "{fiscal_code(i)}"
school = "primaria-dante"
class = "4B"
parent = "RSSMRA80A01C034P"
diet = "none\""""
        )
    news = re.search(r"\[\[news\]\].*", demo, re.S)
    if news:
        out.append("\n" + news.group(0).rstrip())
    print("\n".join(out))


if __name__ == "__main__":
    main()
