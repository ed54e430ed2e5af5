"""`python -m tvmq`: the command line, exiting with its status."""

import atexit
import os
import signal
import sys

from tvmq.cli import main

status = main()
if status == 128 + signal.SIGINT:
    # Run with -m, CPython 3.11 sometimes ends a process that handled a Ctrl-C by
    # SIGINT itself in its shutdown (status -2, not 130; the console script does
    # not): leave with 130 directly, after the exit handlers (scratch removal).
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
raise SystemExit(status)
