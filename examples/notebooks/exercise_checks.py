"""The checker the notebooks' exercises call: it runs your function and compares it with tinynet's answer.

For whoever writes an exercise, three functions (each prints one line and never raises on a
learner's mistake)::

    check_exercise(name, function, args, reference, rtol=None) -> the answer, or None
        Run ``function(*args)`` once and compare the result with ``reference``.
    check_cases(name, function, cases, rtol=None, explain=None) -> the answers (a list), or None
        The same over several cases, each a tuple ``(label, args, reference)``; stops at the
        first wrong one and names its case. ``explain(label, args, answer, reference)``, asked
        when an answer of the right type, shape and dtype has different values (both arrays),
        may return one sentence naming a known mistake (printed after the verdict), or None.
    compare(name, mine, reference, rtol=None) -> bool
        Only the comparison, for an array a cell computed itself.

References must come from tinynet (its layers, losses, optimisers) or from a solutions notebook,
never from the answer written out in the check. The printed line starts with ``name: `` (or
``name PART: `` when a check is split into parts), then the verdict:

- ``ok (largest difference ... of the reference's scale)``: right.
- ``not done yet``: the function still raises ``NotImplementedError``.
- ``your function raised ...``: any other error, with its message.
- ``CHANGED ITS ARGUMENT``: the function modified an array it was given (every case gets copies,
  compared afterwards). A backward never writes into its inputs; a gradient check that perturbs
  an entry must put it back.
- ``WRONG TYPE``: not an array of numbers (``None`` from a missing ``return``, a string, a ragged
  list whose rows differ in length).
- ``WRONG SHAPE``, ``WRONG DTYPE``: checked before any value (NumPy's broadcasting would
  otherwise compare a ``(3, 1)`` with a ``(3, 5)``); an answer keeps its input's dtype.
- ``NOT FINITE``: NaN or inf where the reference is a number.
- ``DIFFERENT``: the largest difference is above the tolerance; says where, yours and expected.

Tolerance, relative to the reference's scale: an answer is right when
``max |mine - reference| <= rtol * max |reference|`` (the scale is 1 for an all-zero reference).
``rtol`` defaults by the reference's dtype (:data:`RTOL`): 1e-7 for float64, 1e-4 for float32,
1e-2 for float16; integers and booleans must be equal. Summing the same terms in another order
moves a float64 result by about 1e-15 of its scale and a float32 one by about 1e-6, so a correct
answer computed any sensible way passes with a wide margin; a wrong formula is off by a sizeable
fraction of the scale, and a one-sided finite difference by about ``h |f''| / 2`` (5e-7 of the
scale for ``h = 1e-6`` and a curvature of order one), so in float64 it fails. A check can pass a
tighter ``rtol`` when its cases need it.
"""

import inspect

import numpy as np

__all__ = ["RTOL", "check_cases", "check_exercise", "compare"]

#: The default tolerance, as a fraction of the reference's largest entry, by the reference's dtype.
RTOL = {np.dtype(np.float64): 1e-7, np.dtype(np.float32): 1e-4, np.dtype(np.float16): 1e-2}

#: How far (relative to an argument's scale) an argument may move and still count as unchanged:
#: putting an entry back by arithmetic (``x + h - h``) may leave the last bit changed.
_UNCHANGED = 1e-12


def check_exercise(name, function, args, reference, rtol=None):
    """Run ``function(*args)``, compare it with ``reference``, print one line; return the answer or None."""
    answers = check_cases(name, function, [("", args, reference)], rtol)
    return None if answers is None else answers[0]


def check_cases(name, function, cases, rtol=None, explain=None):
    """Run ``function`` on every ``(label, args, reference)`` case; print one line; return the answers or None.

    Every NumPy array in ``args`` is copied before the call and the copy compared with the
    original afterwards, so a function that changes its inputs is caught even when its answer
    is right. The first wrong case stops the check: its line names the case by its label.
    """
    answers, largest = [], 0.0
    for label, args, reference in cases:
        case = f" (case: {label})" if label else ""
        given = tuple(arg.copy() if isinstance(arg, np.ndarray) else arg for arg in args)
        try:
            mine = function(*given)
        except NotImplementedError:
            print(f"{name}: not done yet (fill in the function above, then run this cell again)")
            return None
        except Exception as error:  # a learner's bug: say it, and let the notebook go on
            print(f"{name}: your function raised {type(error).__name__}{case}: {error}")
            return None
        wrong = _changed_argument(function, args, given)
        if wrong is None:
            wrong, difference = _judge(mine, reference, rtol)
        if wrong is not None:
            different = wrong.startswith("DIFFERENT") and explain is not None
            hint = explain(label, given, np.asarray(mine), np.asarray(reference)) if different else None
            print(f"{name}: {wrong}{case}" + (f". {hint}" if hint else ""))
            return None
        answers.append(mine)
        largest = max(largest, difference)
    count = f", {len(cases)} cases" if len(cases) > 1 else ""
    print(f"{name}: ok (largest difference {largest:.1e} of the reference's scale{count})")
    return answers


def compare(name, mine, reference, rtol=None):
    """Print whether ``mine`` has ``reference``'s type, shape, dtype and values (to ``rtol`` of its scale)."""
    wrong, difference = _judge(mine, reference, rtol)
    if wrong is not None:
        print(f"{name}: {wrong}")
        return False
    print(f"{name}: ok (largest difference {difference:.1e} of the reference's scale)")
    return True


def _judge(mine, reference, rtol):
    """``(None, relative difference)`` when ``mine`` is right, else ``(what is wrong, None)``."""
    reference = np.asarray(reference)
    if mine is None:
        return "WRONG TYPE: your function returned None (is its `return` missing?)", None
    try:
        array = np.asarray(mine)
    except (ValueError, TypeError):  # NumPy refuses a ragged list: its rows differ in length
        return (f"WRONG TYPE: a {type(mine).__name__} that is not an array (are its rows of different "
                f"lengths?); expected an array of shape {reference.shape}"), None
    if array.dtype.kind not in "biuf":
        return (f"WRONG TYPE: a {type(mine).__name__} of {array.dtype}; expected an array of numbers "
                f"({reference.dtype})"), None
    if array.shape != reference.shape:
        return f"WRONG SHAPE {array.shape}; expected {reference.shape}", None
    if array.dtype != reference.dtype:
        return f"WRONG DTYPE {array.dtype}; expected {reference.dtype} (keep the input's dtype)", None
    if reference.dtype.kind in "biu":
        unequal = array != reference
        if unequal.any():
            return _different(array, reference, unequal.astype(np.float64)), None
        return None, 0.0
    finite = np.isfinite(reference)
    not_finite = ~np.isfinite(array) & finite
    if not_finite.any():
        where = _index(np.argwhere(not_finite)[0])
        return (f"NOT FINITE: {int(np.isnan(array).sum())} NaN and {int(np.isinf(array).sum())} inf "
                f"entries, the first at index {where} (yours {array[where]}, expected {reference[where]:.6g})"), None
    if not np.array_equal(array[~finite], reference[~finite], equal_nan=True):
        return "DIFFERENT where the reference is not finite (NaN or inf there is expected)", None
    rtol = RTOL.get(reference.dtype, RTOL[np.dtype(np.float64)]) if rtol is None else rtol
    difference = np.where(finite, np.abs(array.astype(np.float64) - reference.astype(np.float64)), 0.0)
    scale = float(np.abs(reference[finite]).max()) if finite.any() else 0.0
    scale = scale if scale > 0 else 1.0
    if difference.size and difference.max() > rtol * scale:
        return _different(array, reference, difference) + f" (tolerance {rtol:.0e} of the scale {scale:.3g})", None
    return None, float(difference.max()) / scale if difference.size else 0.0


def _different(array, reference, difference):
    """``DIFFERENT at index (...)``, with yours and the expected value there."""
    where = np.unravel_index(difference.argmax(), difference.shape)
    return (f"DIFFERENT at index {_index(where)}: yours {array[where]:.6g}, expected {reference[where]:.6g}, "
            f"largest difference {difference.max():.1e}")


def _changed_argument(function, originals, given):
    """What the function changed in an array argument it was given, or None if nothing."""
    for position, (original, after) in enumerate(zip(originals, given, strict=True)):
        if not isinstance(original, np.ndarray):
            continue
        argument = _parameter_name(function, position)
        if after.shape != original.shape or after.dtype != original.dtype:
            return f"CHANGED ITS ARGUMENT {argument}: it was resized or retyped in place"
        if original.dtype.kind != "f":
            if not np.array_equal(after, original):
                return f"CHANGED ITS ARGUMENT {argument} (work on a copy)"
            continue
        tolerance = _UNCHANGED * (float(np.abs(original[np.isfinite(original)]).max(initial=0.0)) or 1.0)
        moved = ~np.isclose(after, original, rtol=_UNCHANGED, atol=tolerance, equal_nan=True)
        if moved.any():
            where = _index(np.argwhere(moved)[0])
            return (f"CHANGED ITS ARGUMENT {argument} at index {where}: it was {original[where]:.9g}, your "
                    f"function left {after[where]:.9g} (work on a copy, or put each entry back after you change it)")
    return None


def _parameter_name(function, position):
    """The name of ``function``'s positional parameter number ``position`` (``argument 2`` if unknown)."""
    try:
        parameters = list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        parameters = []
    return parameters[position] if position < len(parameters) else f"argument {position + 1}"


def _index(where):
    return tuple(int(i) for i in where)
