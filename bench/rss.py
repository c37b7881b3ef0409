"""Peak RSS of one command: python -I -S bench/rss.py COMMAND [ARG ...]

Prints `<peak RSS of the command in KiB> <its exit code>` on stdout; the command's own
stdout goes to /dev/null, its stderr passes through.

Why a wrapper: on Linux a child's ru_maxrss starts at the resident size of the process
that forked it (the pre-exec image counts). Measured from the benchmark process itself,
which has psycopg, Jinja and 300 rendered migrations in memory, psql would "peak" at
the benchmark's own size. This wrapper is a bare interpreter (-I -S, stdlib only), so
the floor it adds is small; __main__ reports it (`rss.py true`) next to the numbers.
"""

import os
import resource
import sys


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: rss.py COMMAND [ARG ...]", file=sys.stderr)
        return 2
    pid = os.fork()
    if pid == 0:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(peak_kib, os.waitstatus_to_exitcode(status))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
