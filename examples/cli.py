"""How the example programs read their arguments and end: a message, not a traceback.

Every argument is checked as argparse reads it, before any data is loaded or any weight
moves: numbers against their ranges, files to read against the disk, and the places
results will be written (``--save``, ``--checkpoint``, ``--plots``, ``--out``) against the
folders that are to hold them, so a typing mistake costs a second, not a training run. A
bad argument is argparse's usage line and one message, exit status 2.

A missing data set, a bad model file, a wrong shape or a folder that does not exist is
something the user can fix, so it is printed on stderr as the one message that says how,
and the program exits with status 1. Any other error keeps its traceback: it is a bug to
report. Ctrl-C prints what was kept and exits with status 130, as shells expect.
"""

import argparse
import math
import os
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


def _writable_folder(folder):
    """Why ``folder`` cannot take new files, or None when it can."""
    if not folder.exists():
        return f"the folder {folder} does not exist; create it first (mkdir -p {folder}) or choose another path"
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder} is not writable; choose a folder of yours"
    return None


def output_file(example, optional=False):
    """An argparse type: a file to be written at the end of the run, checked at the start.

    Its folder must exist and be writable, and the path must not be a folder (``example``
    is the file name suggested inside it). With ``optional``, an empty text means "write
    nothing" (``--save ""``).
    """
    def parse(text):
        if text == "" and optional:
            return text
        path = Path(text)
        if text == "" or path.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file path, e.g. {path / example}")
        problem = _writable_folder(path.parent)
        if problem:
            raise argparse.ArgumentTypeError(f"cannot write {text}: {problem}")
        return text

    parse.__name__ = "file path"
    return parse


def output_folder(text):
    """An argparse type: a folder to write files into, created when missing (with its parents).

    The path must not be a file, and the nearest folder that exists on the way must be writable.
    """
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a folder to write the pictures into")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problem = _writable_folder(existing)
    if problem:
        raise argparse.ArgumentTypeError(f"cannot create or write {text}: {problem}")
    return text


def input_file(text):
    """An argparse type: a file that exists and can be read."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no file at {text}; check the path")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text} cannot be read (permissions)")
    return text


def data_folder(text):
    """An argparse type: the folder holding ``mnist/``; it may not exist yet (a download creates it), nor be a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; --data-dir takes the folder that holds mnist/")
    return text
