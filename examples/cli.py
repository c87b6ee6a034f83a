"""How the example programs end: tinynet's own errors as a message, not a traceback.

A missing data set, a bad model file, a wrong shape or a folder that does not exist is
something the user can fix, so it is printed on stderr as the one message that says how,
and the program exits with status 1. Any other error keeps its traceback: it is a bug to
report. Ctrl-C prints what was kept and exits with status 130, as shells expect.
"""

import sys
from pathlib import Path

import tinynet


def run(main, *args):
    """Call ``main(*args)`` and return its result, reporting the user's errors as above."""
    program = Path(sys.argv[0]).name
    try:
        return main(*args)
    except (tinynet.TinynetError, OSError) as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt as error:
        print(f"\n{program}: stopped: {error or 'Ctrl-C'}", file=sys.stderr)
        raise SystemExit(130) from None
