"""How the example programs end: tinynet's own errors as a message, not a traceback.

A missing data set, a bad model file, a wrong shape or a folder that does not exist is
something the user can fix, so it is printed on stderr as the one message that says how,
and the program exits with status 1. Any other error keeps its traceback: it is a bug to
report. Ctrl-C prints what was kept and exits with status 130, as shells expect.
"""

import argparse
import math
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


def whole_number(low):
    """An argparse type: an int >= ``low``, refused by argparse's own usage message otherwise."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = f"int >= {low}"
    return parse


def real_number(low, high=math.inf, low_open=False):
    """An argparse type: a finite float in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value > high or (value <= low if low_open else value < low):
            bound = f"{'>' if low_open else '>='} {low}" + (f" and <= {high}" if high != math.inf else "")
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text}")
        return value

    parse.__name__ = "number"
    return parse
