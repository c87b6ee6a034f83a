"""The exercise checker rejects every known-wrong answer fed to it and accepts the solutions in float64 and float32."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "examples" / "notebooks"


@pytest.fixture
def checks(monkeypatch):
    """The checker modules, imported from the notebooks' folder as the notebooks import them."""
    monkeypatch.syspath_prepend(str(NOTEBOOKS))
    import backprop_checks
    import exercise_checks

    return exercise_checks, backprop_checks


def _solved(name):
    """The functions a solutions notebook defines (the right answers), by name."""
    from tinynet.layers.conv import col2im

    namespace = {"np": np, "col2im": col2im}
    for cell in json.loads((NOTEBOOKS / "solutions" / name).read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and re.search(r"^def \w+\(", source, re.MULTILINE):
            exec(source, namespace)  # noqa: S102 - the repository's own solutions notebook
    return namespace


@pytest.fixture(scope="module")
def solutions():
    return _solved("backprop_from_scratch.ipynb")


def _verdict(capsys, name):
    """The one line the check printed, after ``name: ``."""
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{name}: "), lines
    return lines[0][len(name) + 2:]


# ---- compare and check_exercise, on any answer ----

REFERENCE = np.linspace(-1.0, 2.0, 6).reshape(2, 3)


@pytest.mark.parametrize(("answer", "verdict"), [
    (np.where(REFERENCE > 0, np.nan, REFERENCE), "NOT FINITE: 4 NaN and 0 inf"),
    (np.full((2, 3), np.nan), "NOT FINITE: 6 NaN"),
    (np.where(REFERENCE > 1, np.inf, REFERENCE), "NOT FINITE: 0 NaN and 2 inf"),
    ([[1.0, 2.0, 3.0], [4.0, 5.0]], "WRONG TYPE"),
    (None, "WRONG TYPE: your function returned None"),
    ("dX", "WRONG TYPE"),
    ({"dX": 1.0}, "WRONG TYPE"),
    (REFERENCE.reshape(3, 2), "WRONG SHAPE (3, 2)"),
    (REFERENCE[:, :1], "WRONG SHAPE (2, 1)"),
    (REFERENCE.astype(np.float32), "WRONG DTYPE float32"),
    (REFERENCE.astype(np.complex128), "WRONG TYPE"),
    (REFERENCE.tolist()[:1], "WRONG SHAPE (1, 3)"),
    (REFERENCE + np.eye(2, 3) * 1e-3, "DIFFERENT at index (0, 0)"),
])
def test_compare_rejects_wrong_answers_without_crashing(checks, capsys, answer, verdict):
    """NaN, inf, ragged lists, None, strings, dicts, wrong shapes and dtypes, wrong values: each named."""
    exercise_checks, _ = checks
    assert exercise_checks.compare("answer", answer, REFERENCE) is False
    assert _verdict(capsys, "answer").startswith(verdict)


def test_the_tolerance_rejects_a_one_sided_difference_and_accepts_round_off(checks, capsys):
    """Relative to the reference's scale: a one-sided difference fails in float64, float32 round-off passes."""
    exercise_checks, _ = checks
    x, h = np.linspace(-2.0, 2.0, 9), 1e-6
    exact = np.cos(x) * 3.0  # d/dx of 3 sin(x)
    one_sided = (3 * np.sin(x + h) - 3 * np.sin(x)) / h
    centred = (3 * np.sin(x + h) - 3 * np.sin(x - h)) / (2 * h)
    assert exercise_checks.compare("one-sided", one_sided, exact) is False
    assert exercise_checks.compare("centred", centred, exact) is True
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((50, 300)).astype(np.float32), rng.standard_normal((300, 40)).astype(np.float32)
    in_another_order = np.stack([sum(a[:, k] * b[k, j] for k in reversed(range(300))) for j in range(40)], axis=1)
    assert exercise_checks.compare("float32 product", in_another_order, a @ b) is True
    assert exercise_checks.compare("float32, off by 1e-3", a @ b * (1 + 1e-3), a @ b) is False
    verdicts = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[1].split(" ")[0] for line in verdicts] == ["DIFFERENT", "ok", "ok", "DIFFERENT"]


def test_check_exercise_says_not_done_raised_changed_and_ok(checks, capsys):
    """A stub, an exception, an answer that writes into its argument, and a right answer: one line each."""
    exercise_checks, _ = checks
    X = REFERENCE.copy()

    def not_done(X):
        raise NotImplementedError

    def in_place(X):
        X[X < 0] = 0.0
        return X

    assert exercise_checks.check_exercise("e", not_done, (X,), X) is None
    assert exercise_checks.check_exercise("e", lambda X: 1 / 0, (X,), X) is None
    assert exercise_checks.check_exercise("e", in_place, (X,), np.maximum(X, 0)) is None
    assert np.array_equal(X, REFERENCE), "the checker passed the learner a copy"
    assert exercise_checks.check_exercise("e", lambda X: np.maximum(X, 0), (X,), np.maximum(X, 0)) is not None
    lines = capsys.readouterr().out.splitlines()
    expected = ["e: not done yet", "e: your function raised ZeroDivisionError", "e: CHANGED ITS ARGUMENT X", "e: ok"]
    assert len(lines) == 4 and all(line.startswith(part) for part, line in zip(expected, lines, strict=True))


# ---- each exercise of backprop_from_scratch: the solution passes, the known mistakes do not ----

EXERCISES = ["relu_backward", "cross_entropy_grad", "numerical_gradient", "conv_kernel_grad", "conv_input_grad",
             "maxpool_backward", "batchnorm_backward", "softmax_backward"]


@pytest.mark.parametrize("name", EXERCISES)
def test_each_solution_passes_its_check_in_float64_and_float32(checks, capsys, solutions, name):
    """The solutions notebook's answer passes every case (float32 cases included, except the float64 gradient check)."""
    _, backprop_checks = checks
    answers = getattr(backprop_checks, f"check_{name}")(solutions[name])
    assert answers is not None, capsys.readouterr().out
    if name != "numerical_gradient":
        assert {np.asarray(answer).dtype for answer in answers} == {np.dtype(np.float64), np.dtype(np.float32)}
    assert _verdict(capsys, name).startswith("ok (")


def _numerical_gradient(one_sided=False, restore=True):
    """A gradient check written with one of the two classic mistakes."""
    def numerical_gradient(f, x, h=1e-6):
        grad = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            original = x[i]
            x[i] = original + h
            plus = f(x)
            x[i] = original - h
            minus = f(x)
            if one_sided:
                x[i] = original
                minus = f(x)
            if restore:
                x[i] = original
            grad[i] = (plus - minus) / (h if one_sided else 2 * h)
        return grad
    return numerical_gradient


def _restored_by_arithmetic(f, x, h=1e-6):
    """Right: each entry is put back by adding h again, which may change its last bit."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        x[i] += h
        plus = f(x)
        x[i] -= 2 * h
        minus = f(x)
        x[i] += h
        grad[i] = (plus - minus) / (2 * h)
    return grad


def test_the_gradient_check_exercise_rejects_one_sided_and_forgotten_restore(checks, capsys):
    """A one-sided difference is off by ~h; a check that leaves x perturbed is caught by x itself."""
    _, backprop_checks = checks
    assert backprop_checks.check_numerical_gradient(_numerical_gradient(one_sided=True)) is None
    assert _verdict(capsys, "numerical_gradient").startswith("DIFFERENT")
    assert backprop_checks.check_numerical_gradient(_numerical_gradient(restore=False)) is None
    assert _verdict(capsys, "numerical_gradient").startswith("CHANGED ITS ARGUMENT x")
    assert backprop_checks.check_numerical_gradient(_restored_by_arithmetic) is not None
    assert _verdict(capsys, "numerical_gradient").startswith("ok")


def _pool(X, dY, k, route):
    """Max-pool backward where ``route(windows)`` gives a 0/1 mask of the inputs that receive each window's dY."""
    N, C, H, Wd = X.shape
    out_h, out_w = H // k, Wd // k
    windows = X[:, :, :out_h * k, :out_w * k].reshape(N, C, out_h, k, out_w, k)
    mask = route(windows)
    dX = np.zeros_like(X)
    dX[:, :, :out_h * k, :out_w * k] = (mask * dY[:, :, :, None, :, None]).reshape(N, C, out_h * k, out_w * k)
    return dX


def _every_tied_maximum(windows):
    return (windows == windows.max(axis=(3, 5), keepdims=True)).astype(windows.dtype)


def _last_tied_maximum(windows):
    mask = _every_tied_maximum(windows).transpose(0, 1, 2, 4, 3, 5)
    flat = mask.reshape(*mask.shape[:4], -1)
    last = flat.shape[-1] - 1 - flat[..., ::-1].argmax(axis=-1)
    flat = np.zeros_like(flat)
    np.put_along_axis(flat, last[..., None], 1, axis=-1)
    return flat.reshape(mask.shape).transpose(0, 1, 2, 4, 3, 5)


def test_the_maxpool_exercise_checks_ties(checks, capsys):
    """Routing to every tied maximum, or to the last one, passes random floats but not the tied maps."""
    _, backprop_checks = checks
    assert backprop_checks.check_maxpool_backward(lambda X, dY, k: _pool(X, dY, k, _every_tied_maximum)) is None
    verdict = _verdict(capsys, "maxpool_backward")
    assert verdict.startswith("DIFFERENT") and "case: zeros after ReLU" in verdict and "sent its gradient to" in verdict
    assert backprop_checks.check_maxpool_backward(lambda X, dY, k: _pool(X, dY, k, _last_tied_maximum)) is None
    verdict = _verdict(capsys, "maxpool_backward")
    assert verdict.startswith("DIFFERENT") and "first maximum in row-major order" in verdict


def test_the_convolution_exercises_reject_transposed_gradients(checks, capsys, solutions):
    """dKmat not transposed back, kernel axes swapped, channels-last columns, dY rows out of order: all rejected."""
    _, backprop_checks = checks

    def rows(dY):
        return dY.transpose(0, 2, 3, 1).reshape(-1, dY.shape[1])

    wrong_kernel_grads = [
        lambda cols, dY, shape: (cols.T @ rows(dY)).reshape(shape),  # (CKK, F) read as (F, CKK)
        lambda cols, dY, shape: (rows(dY).T @ cols).reshape(shape[:2] + shape[:1:-1]).swapaxes(2, 3),  # (kw, kh)
        lambda cols, dY, shape: (rows(dY).T @ cols).reshape(shape[0], *shape[2:], shape[1]).transpose(0, 3, 1, 2),
        lambda cols, dY, shape: (dY.transpose(0, 3, 2, 1).reshape(-1, shape[0]).T @ cols).reshape(shape),  # (n, q, r)
    ]
    for wrong in wrong_kernel_grads:
        assert backprop_checks.check_conv_kernel_grad(wrong) is None
        assert _verdict(capsys, "conv_kernel_grad").startswith(("DIFFERENT", "WRONG SHAPE"))

    col2im = solutions["col2im"]

    def input_grad_with_kernel_axes_swapped(dY, K, x_shape, stride, padding):
        dcols = rows(dY) @ K.swapaxes(2, 3).reshape(K.shape[0], -1)
        return col2im(dcols, x_shape, K.shape[2:], stride, padding)

    assert backprop_checks.check_conv_input_grad(input_grad_with_kernel_axes_swapped) is None
    assert _verdict(capsys, "conv_input_grad").startswith(("DIFFERENT", "your function raised"))


def test_the_softmax_exercise_rejects_the_diagonal_only(checks, capsys):
    """dY · Y · (1 - Y), the Jacobian's diagonal, is rejected and named as such."""
    _, backprop_checks = checks
    assert backprop_checks.check_softmax_backward(lambda Y, dY: dY * Y * (1 - Y)) is None
    verdict = _verdict(capsys, "softmax_backward")
    assert verdict.startswith("DIFFERENT") and "diagonal" in verdict


@pytest.mark.parametrize(("name", "wrong", "verdict"), [
    ("relu_backward", lambda X, dY: dY * (X >= 0), "DIFFERENT"),
    ("relu_backward", lambda X, dY: (dY * (X > 0)).astype(np.float64), "WRONG DTYPE"),
    ("relu_backward", lambda X, dY: [list(row[: i + 1]) for i, row in enumerate(dY * (X > 0))], "WRONG TYPE"),
    ("cross_entropy_grad", lambda Z, t: np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True), "NOT FINITE"),
    ("batchnorm_backward", lambda x, dy, gamma, eps: gamma * dy / np.sqrt(x.var(axis=0) + eps), "DIFFERENT"),
    ("maxpool_backward", lambda X, dY, k: dY, "WRONG SHAPE"),
])
def test_other_known_mistakes_are_rejected(checks, capsys, name, wrong, verdict):
    """Slope 1 at 0, float64 for float32 input, a ragged list, an overflowing exp, BatchNorm without the batch terms."""
    _, backprop_checks = checks
    with np.errstate(over="ignore", invalid="ignore"):
        assert getattr(backprop_checks, f"check_{name}")(wrong) is None
    assert _verdict(capsys, name).startswith(verdict)


# ---- the capstone's checks ----

@pytest.fixture
def capstone(monkeypatch):
    monkeypatch.syspath_prepend(str(NOTEBOOKS))
    import capstone_checks

    return capstone_checks, _solved("capstone.ipynb")


def _forward_without_relu(params, X):
    cache = []
    for layer in params:
        cache.append(X)
        X = X @ layer["W"] + layer["b"]
    return X, cache


def _backward_without_the_relu_mask(params, cache, dlogits):
    grads, dY = [None] * len(params), dlogits
    for index in reversed(range(len(params))):
        grads[index] = {"W": cache[index].T @ dY, "b": dY.sum(axis=0)}
        dY = dY @ params[index]["W"].T
    return grads


def _dampened_momentum(params, grads, velocities, lr, momentum):
    for layer, grad, velocity in zip(params, grads, velocities, strict=True):
        for key in layer:
            velocity[key] = momentum * velocity[key] + (1 - momentum) * grad[key]
            layer[key] -= lr * velocity[key]


def test_the_capstone_checks_accept_the_solutions_and_reject_known_mistakes(capstone, capsys, mnist_dir):
    """Forward without ReLU, backward without its mask, dampened momentum, a loop that never steps: rejected."""
    capstone_checks, solved = capstone
    assert capstone_checks.check_mlp_forward(solved["mlp_forward"]) is not None
    assert capstone_checks.check_softmax_cross_entropy(solved["softmax_cross_entropy"]) is not None
    assert capstone_checks.check_mlp_backward(solved["mlp_backward"], solved["mlp_forward"]) is not None
    assert capstone_checks.check_sgd_momentum_step(solved["sgd_momentum_step"]) is not None
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all(": ok (" in line for line in lines), lines

    assert capstone_checks.check_mlp_forward(_forward_without_relu) is None
    assert capstone_checks.check_mlp_backward(_backward_without_the_relu_mask, solved["mlp_forward"]) is None
    assert capstone_checks.check_sgd_momentum_step(_dampened_momentum) is None
    assert capstone_checks.check_softmax_cross_entropy(lambda logits, labels: (0.0, logits)) is None
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all(": DIFFERENT" in line for line in lines), lines

    import tinynet

    (x, y), _ = tinynet.datasets.load_mnist(data_dir=mnist_dir, download=False)
    x = x[:4096].reshape(4096, -1).astype(np.float32) / 255
    assert capstone_checks.check_train(solved["train"], x, y[:4096]) is not None
    assert _verdict(capsys, "train").startswith("ok (")
    assert capstone_checks.check_train(lambda params, x, labels, epochs, *rest: [2.3] * epochs, x, y) is None
    assert _verdict(capsys, "train").startswith("NOT LEARNING")
    assert capstone_checks.check_train(lambda params, x, labels, epochs, *rest: [np.nan] * epochs, x, y) is None
    assert _verdict(capsys, "train").startswith("WRONG TYPE")


# ---- the scalar prelude's checks ----

@pytest.fixture
def prelude(monkeypatch):
    """The prelude's checks, and its Value class wired to the solutions' local derivatives and order."""
    monkeypatch.syspath_prepend(str(NOTEBOOKS))
    import prelude_checks

    namespace = _solved("scalar_prelude.ipynb")
    cells = json.loads((NOTEBOOKS / "scalar_prelude.ipynb").read_text())["cells"]
    exec(next("".join(cell["source"]) for cell in cells if "class Value" in "".join(cell["source"])), namespace)  # noqa: S102
    return prelude_checks, namespace


def _every_path(root):
    """A topological order that lists a node once per path to it (no memory of visited nodes)."""
    order = []
    for parent in root.parents:
        order += _every_path(parent)
    return order + [root]


def test_the_prelude_checks_accept_the_solutions_and_reject_known_mistakes(prelude, capsys):
    """Swapped product derivatives, tanh' written with x instead of tanh(x), a node listed twice: rejected."""
    prelude_checks, solved = prelude
    assert prelude_checks.check_mul_local_grads(solved["mul_local_grads"]) is not None
    assert prelude_checks.check_tanh_local_grads(solved["tanh_local_grads"]) is not None
    assert prelude_checks.check_topological_order(solved["topological_order"], solved["Value"]) is not None
    assert prelude_checks.check_neuron(solved["Value"]) is not None
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all(": ok (" in line for line in lines), lines

    assert prelude_checks.check_mul_local_grads(lambda a, b: (a, b)) is None
    assert prelude_checks.check_tanh_local_grads(lambda x: (1 - x**2,)) is None
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(": DIFFERENT" in line for line in lines), lines
    assert prelude_checks.check_topological_order(_every_path, solved["Value"]) is None
    assert _verdict(capsys, "topological_order").startswith("WRONG ORDER: a node appears twice")
    assert prelude_checks.check_topological_order(lambda root: _every_path(root)[::-1], solved["Value"]) is None
    assert _verdict(capsys, "topological_order").startswith("WRONG ORDER")
