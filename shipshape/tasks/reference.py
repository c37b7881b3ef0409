"""The flags of every task, as a Markdown table for the README (tested to be current).

`python -m shipshape.tasks.reference` prints it; `--write` puts it into README.md
between its markers.
"""

from __future__ import annotations

import sys
from pathlib import Path

BEGIN, END = "<!-- task-flags:begin -->", "<!-- task-flags:end -->"


def flags_table() -> str:
    from shipshape.tasks.collection import namespace

    rows = ["| task | flags |", "|---|---|"]
    for name in sorted(namespace.task_names):
        task = namespace[name]
        flags = []
        for arg in sorted(task.get_arguments(ignore_unknown_help=True),
                          key=lambda a: (not a.positional, a.name)):
            long = arg.names[0]
            short = [n for n in arg.names[1:] if len(n) == 1]
            if arg.positional:
                flags.append(f"`{long.upper()}`")
            else:
                flags.append(f"`--{long}`" + (f" (`-{short[0]}`)" if short else ""))
        rows.append(f"| `{name}` | {', '.join(flags) or '—'} |")
    return "\n".join(rows) + "\n"


def embed(readme: str, table: str) -> str:
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{table}{END}{tail}"


if __name__ == "__main__":
    table = flags_table()
    if "--write" in sys.argv:
        path = Path(__file__).resolve().parents[2] / "README.md"
        path.write_text(embed(path.read_text(), table))
    else:
        sys.stdout.write(table)
