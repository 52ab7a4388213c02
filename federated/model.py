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
float64 is clipping what is sent. CPU only, at most MAX_THREADS torch threads: the phone's other work comes
first, and on a model this small a second thread only adds contention (measured: 1 ms per SGD step on one
thread, 24 ms on two busy cores). Deterministic: weights from `build(seed)` (numpy, seeded), minibatches from
`train_local(seed=...)` (its own torch.Generator); no global RNG is touched.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np

from federated.vocab import APP_CATEGORIES, PLACE_TYPES

if TYPE_CHECKING:
    import torch

    from federated.features import Examples

HIDDEN = 32
MAX_THREADS = 1
PLACE_LOSS_WEIGHT = 0.5
N_INPUTS = 2 + 7 + len(PLACE_TYPES) + (len(APP_CATEGORIES) + 1) + 2


def _torch() -> Any:
    import torch

    if torch.get_num_threads() > MAX_THREADS:
        torch.set_num_threads(MAX_THREADS)
    return torch


@functools.lru_cache(maxsize=1)
def _net_class() -> type:
    """The torch module class, defined on first use (torch is imported lazily, once)."""
    _torch()
    import torch  # as _torch() set it up; imported by name, so that the class is typed

    class NextApp(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = torch.nn.Linear(N_INPUTS, HIDDEN, dtype=torch.float64)
            self.app = torch.nn.Linear(HIDDEN, len(APP_CATEGORIES), dtype=torch.float64)
            self.place = torch.nn.Linear(HIDDEN, len(PLACE_TYPES), dtype=torch.float64)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = torch.tanh(self.hidden(x))
            return self.app(h), self.place(h)

    return NextApp


def initial(seed: int = 0) -> np.ndarray:
    """The initial weights as get_flat lays them out, without torch (the server needs no torch): each
    layer's weight uniform in +-1/sqrt(fan_in) from a seeded numpy generator, biases zero."""
    rng = np.random.default_rng(int(seed))
    parts = []
    for fan_in, fan_out in ((N_INPUTS, HIDDEN), (HIDDEN, len(APP_CATEGORIES)), (HIDDEN, len(PLACE_TYPES))):
        bound = 1.0 / float(np.sqrt(fan_in))
        parts += [rng.uniform(-bound, bound, size=fan_out * fan_in), np.zeros(fan_out)]
    return np.concatenate(parts).astype(np.float64)


def build(*, seed: int = 0) -> torch.nn.Module:
    """A fresh model holding initial(seed): the same seed gives bit-identical weights."""
    net = _net_class()()
    set_flat(net, initial(seed))
    return net


def size() -> int:
    """Number of parameters (the length of get_flat)."""
    return HIDDEN * (N_INPUTS + 1) + (HIDDEN + 1) * (len(APP_CATEGORIES) + len(PLACE_TYPES))


def get_flat(net: torch.nn.Module) -> np.ndarray:
    """Every parameter, in a fixed order, as one float64 vector (a copy)."""
    torch = _torch()
    with torch.no_grad():
        return torch.cat([p.detach().reshape(-1) for p in net.parameters()]).to(torch.float64).numpy().copy()


def set_flat(net: torch.nn.Module, vec: np.ndarray) -> None:
    """Load a vector produced by get_flat (length and finiteness checked)."""
    torch = _torch()
    v = np.asarray(vec, dtype=np.float64)
    n = sum(p.numel() for p in net.parameters())
    if v.ndim != 1 or v.shape[0] != n:
        raise ValueError(f"weights vector has shape {v.shape}, the model needs ({n},)")
    if not np.all(np.isfinite(v)):
        raise ValueError("weights vector is not finite")
    t = torch.from_numpy(v.copy())
    with torch.no_grad():
        i = 0
        for p in net.parameters():
            p.copy_(t[i:i + p.numel()].view_as(p))
            i += p.numel()


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


def _loss(net: torch.nn.Module, x: torch.Tensor, y_app: torch.Tensor, y_place: torch.Tensor) -> torch.Tensor:
    torch = _torch()
    f = torch.nn.functional
    app_logits, place_logits = net(x)
    loss = f.cross_entropy(app_logits, y_app)
    if bool((y_place >= 0).any()):
        loss = loss + PLACE_LOSS_WEIGHT * f.cross_entropy(place_logits, y_place, ignore_index=-1)
    return loss


def train_local(net: torch.nn.Module, examples: Examples, *, steps: int, batch_size: int, lr: float,
                seed: int = 0) -> float:
    """`steps` steps of plain SGD on minibatches drawn (with replacement, seeded) from the examples.
    Returns the mean loss of the last steps (for logs; it never leaves the device)."""
    if steps <= 0 or batch_size <= 0 or not lr > 0:
        raise ValueError("steps, batch_size and lr must be > 0")
    n = len(examples)
    if n == 0:
        raise ValueError("no examples to train on")
    torch = _torch()
    x = torch.from_numpy(encode(examples))
    y_app = torch.from_numpy(np.asarray(examples.y_app, dtype=np.int64))
    y_place = torch.from_numpy(np.asarray(examples.y_place, dtype=np.int64))
    g = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.SGD(net.parameters(), lr=float(lr))
    net.train()
    recent: list[float] = []
    for _ in range(int(steps)):
        idx = torch.randint(0, n, (min(int(batch_size), n),), generator=g)
        opt.zero_grad(set_to_none=True)
        loss = _loss(net, x[idx], y_app[idx], y_place[idx])
        loss.backward()
        opt.step()
        recent.append(float(loss.detach()))
    return float(np.mean(recent[-10:]))


def predict(net: torch.nn.Module, examples: Examples) -> tuple[np.ndarray, np.ndarray]:
    """(top-1 app category index, top-1 place type index) per example."""
    torch = _torch()
    net.eval()
    with torch.no_grad():
        app_logits, place_logits = net(torch.from_numpy(encode(examples)))
    return app_logits.argmax(1).numpy(), place_logits.argmax(1).numpy()


def evaluate(net: torch.nn.Module, examples: Examples) -> dict[str, int]:
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
