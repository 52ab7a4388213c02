"""The small on-device model: next app category (head 1) and next place type (head 2) from the context.

    net = build(seed=0)                  # the same seed gives the same weights, everywhere
    vec = get_flat(net)                  # float64 vector: what Flower carries and DP clips
    set_flat(net, vec)
    train_local(net, examples, steps=50, batch_size=64, lr=0.1, seed=round)
    evaluate(net, examples)              # {"app_correct", "app_total", "place_correct", "place_total"}

Input (encode): hour as sin/cos, weekday one-hot (7), current place type one-hot (vocab.PLACE_TYPES), previous
app category one-hot (vocab.APP_CATEGORIES + "none"), log-scaled minutes since unlock, meeting within 30 min:
31 numbers. One hidden layer of HIDDEN tanh units feeds both heads: 31*32+32 + 32*11+11 + 32*8+8 = 1,651
parameters. Small on purpose: the DP noise a release carries grows with the square root of the number of
parameters while the clipped signal does not, so every parameter the task does not need costs utility.

The parameters are float64: the update a device computes (new - old) is then exact, and clipping it in
float64 is clipping what is sent. The forward pass and its gradient are written out in numpy (a model this
small needs no autograd framework: a device round imports no torch, which costs a Ray worker ~3 s of CPU
to import and warm up, more than the round itself). Loss: cross-entropy of the app head plus
PLACE_LOSS_WEIGHT times the place head's over the examples that have a next place, each a mean over the
minibatch. Deterministic: weights from `build(seed)`, minibatches from `train_local(seed=...)` (their own
numpy Generator); no global RNG is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from federated.vocab import APP_CATEGORIES, PLACE_TYPES

if TYPE_CHECKING:
    from federated.features import Examples

HIDDEN = 32
PLACE_LOSS_WEIGHT = 0.5
N_INPUTS = 2 + 7 + len(PLACE_TYPES) + (len(APP_CATEGORIES) + 1) + 2
# (fan_in, fan_out) of each layer, in the order of the flat vector: hidden, app head, place head; each layer
# is its (fan_out, fan_in) weight row-major, then its fan_out biases
LAYERS = ((N_INPUTS, HIDDEN), (HIDDEN, len(APP_CATEGORIES)), (HIDDEN, len(PLACE_TYPES)))


@dataclass(slots=True)
class Net:
    """The model's parameters: one float64 vector, each layer's weight and bias a view into it."""

    flat: np.ndarray

    def layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        out, i = [], 0
        for fan_in, fan_out in LAYERS:
            w = self.flat[i:i + fan_in * fan_out].reshape(fan_out, fan_in)
            i += fan_in * fan_out
            out.append((w, self.flat[i:i + fan_out]))
            i += fan_out
        return out


def initial(seed: int = 0) -> np.ndarray:
    """The initial weights as get_flat lays them out: each layer's weight uniform in +-1/sqrt(fan_in) from a
    seeded numpy generator, biases zero."""
    rng = np.random.default_rng(int(seed))
    parts = []
    for fan_in, fan_out in LAYERS:
        bound = 1.0 / float(np.sqrt(fan_in))
        parts += [rng.uniform(-bound, bound, size=fan_out * fan_in), np.zeros(fan_out)]
    return np.concatenate(parts).astype(np.float64)


def build(*, seed: int = 0) -> Net:
    """A fresh model holding initial(seed): the same seed gives bit-identical weights."""
    return Net(initial(seed))


def size() -> int:
    """Number of parameters (the length of get_flat)."""
    return sum(fan_out * (fan_in + 1) for fan_in, fan_out in LAYERS)


def get_flat(net: Net) -> np.ndarray:
    """Every parameter, in a fixed order, as one float64 vector (a copy)."""
    return net.flat.copy()


def set_flat(net: Net, vec: np.ndarray) -> None:
    """Load a vector produced by get_flat (length and finiteness checked)."""
    v = np.asarray(vec, dtype=np.float64)
    if v.ndim != 1 or v.shape[0] != net.flat.shape[0]:
        raise ValueError(f"weights vector has shape {v.shape}, the model needs ({net.flat.shape[0]},)")
    if not np.all(np.isfinite(v)):
        raise ValueError("weights vector is not finite")
    net.flat[:] = v


def encode(ex: Examples) -> np.ndarray:
    """Examples -> the (n, N_INPUTS) float64 input matrix (column layout in the module docstring)."""
    n = len(ex)
    x = np.zeros((n, N_INPUTS), dtype=np.float64)
    rows = np.arange(n)
    x[:, 0] = ex.hour_sin
    x[:, 1] = ex.hour_cos
    col = 2
    x[rows, col + np.clip(ex.weekday, 0, 6)] = 1.0
    col += 7
    x[rows, col + np.clip(ex.place, 0, len(PLACE_TYPES) - 1)] = 1.0
    col += len(PLACE_TYPES)
    x[rows, col + np.clip(ex.prev_app, 0, len(APP_CATEGORIES))] = 1.0
    col += len(APP_CATEGORIES) + 1
    x[:, col] = ex.unlock
    x[:, col + 1] = ex.meeting_soon
    return x


def _forward(net: Net, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hidden activations, app logits, place logits)."""
    (w1, b1), (w2, b2), (w3, b3) = net.layers()
    h = np.tanh(x @ w1.T + b1)
    return h, h @ w2.T + b2, h @ w3.T + b3


def _cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """(mean cross-entropy, its gradient with respect to the logits) over the rows of `logits`."""
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    rows = np.arange(len(y))
    grad = np.exp(log_p)
    grad[rows, y] -= 1.0
    return float(-log_p[rows, y].mean()), grad / len(y)


def _step(net: Net, x: np.ndarray, y_app: np.ndarray, y_place: np.ndarray, lr: float) -> float:
    """One SGD step on a minibatch; returns its loss before the step."""
    (w1, _), (w2, _), (w3, _) = net.layers()
    h, app_logits, place_logits = _forward(net, x)
    loss, d_app = _cross_entropy(app_logits, y_app)
    d_place = np.zeros_like(place_logits)
    known = y_place >= 0
    if known.any():  # the place head only learns from examples with a next place
        place_loss, d_known = _cross_entropy(place_logits[known], y_place[known])
        loss += PLACE_LOSS_WEIGHT * place_loss
        d_place[known] = PLACE_LOSS_WEIGHT * d_known
    d_pre = (d_app @ w2 + d_place @ w3) * (1.0 - h * h)  # through tanh
    grads = [(d_pre.T @ x, d_pre.sum(axis=0)), (d_app.T @ h, d_app.sum(axis=0)), (d_place.T @ h, d_place.sum(axis=0))]
    for (w, b), (gw, gb) in zip(net.layers(), grads, strict=True):
        w -= lr * gw  # views into net.flat: updated in place
        b -= lr * gb
    return loss


def train_local(net: Net, examples: Examples, *, steps: int, batch_size: int, lr: float, seed: int = 0) -> float:
    """`steps` steps of plain SGD on minibatches drawn (with replacement, seeded) from the examples.
    Returns the mean loss of the last steps (for logs; it never leaves the device)."""
    if steps <= 0 or batch_size <= 0 or not lr > 0:
        raise ValueError("steps, batch_size and lr must be > 0")
    n = len(examples)
    if n == 0:
        raise ValueError("no examples to train on")
    x = encode(examples)
    y_app = np.asarray(examples.y_app, dtype=np.int64)
    y_place = np.asarray(examples.y_place, dtype=np.int64)
    rng = np.random.default_rng(int(seed))
    recent: list[float] = []
    for _ in range(int(steps)):
        idx = rng.integers(0, n, size=min(int(batch_size), n))
        recent.append(_step(net, x[idx], y_app[idx], y_place[idx], float(lr)))
    return float(np.mean(recent[-10:]))


def predict(net: Net, examples: Examples) -> tuple[np.ndarray, np.ndarray]:
    """(top-1 app category index, top-1 place type index) per example."""
    _, app_logits, place_logits = _forward(net, encode(examples))
    return app_logits.argmax(1), place_logits.argmax(1)


def evaluate(net: Net, examples: Examples) -> dict[str, int]:
    """Top-1 counts: next app category over every example, next place over examples that have one."""
    if len(examples) == 0:
        return {"app_correct": 0, "app_total": 0, "place_correct": 0, "place_total": 0}
    app, place = predict(net, examples)
    y_place = np.asarray(examples.y_place)
    known = y_place >= 0
    return {
        "app_correct": int(np.sum(app == np.asarray(examples.y_app))),
        "app_total": int(len(examples)),
        "place_correct": int(np.sum(place[known] == y_place[known])),
        "place_total": int(np.sum(known)),
    }
