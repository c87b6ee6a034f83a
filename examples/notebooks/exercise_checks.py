"""The checker the notebooks' exercises call: it runs your function and compares it with tinynet's answer.

It says what is wrong: an exercise not done yet, an error your code raised, the wrong shape,
the wrong dtype, or values that differ (and where the largest difference is).
"""

import numpy as np

__all__ = ["check_exercise", "compare"]


def check_exercise(name, function, args, reference, rtol=1e-5):
    """Run ``function(*args)`` and compare it with ``reference``; print one line; return the answer or None."""
    try:
        mine = function(*args)
    except NotImplementedError:
        print(f"{name}: not done yet (fill in the function above, then run this cell again)")
        return None
    except Exception as error:  # a learner's bug: say it, and let the notebook go on
        print(f"{name}: your function raised {type(error).__name__}: {error}")
        return None
    return mine if compare(name, mine, reference, rtol) else None


def compare(name, mine, reference, rtol=1e-5):
    """Print whether ``mine`` has ``reference``'s shape, dtype and values (to ``rtol`` of its largest entry)."""
    mine, reference = np.asarray(mine), np.asarray(reference)
    if mine.shape != reference.shape:  # checked first: broadcasting would hide a (3, 1) against a (3, 5)
        print(f"{name}: WRONG SHAPE {mine.shape}; expected {reference.shape}")
        return False
    if mine.dtype != reference.dtype:
        print(f"{name}: WRONG DTYPE {mine.dtype}; expected {reference.dtype} (keep the input's dtype)")
        return False
    difference = np.abs(mine.astype(np.float64) - reference.astype(np.float64))
    scale = max(float(np.abs(reference).max()), 1e-12)
    if difference.max() > rtol * scale:
        where = np.unravel_index(difference.argmax(), difference.shape)
        print(f"{name}: DIFFERENT at index {tuple(int(i) for i in where)}: yours {mine[where]:.6g}, "
              f"expected {reference[where]:.6g}")
        return False
    print(f"{name}: ok (largest difference {difference.max():.1e})")
    return True
