"""Skip random weight initialisation while building a model whose weights are loaded next.

Building BERT or an EfficientNet spends most of its time drawing random numbers that
``load_state_dict`` then overwrites (60% of ``zoo.load`` before this). Inside ``skip_init()``
torch's ``nn.init`` functions return their tensor untouched. Only used where a strict
state-dict load follows, so no parameter or persistent buffer keeps uninitialised memory;
non-persistent buffers (position ids, mel filterbanks) are computed, not initialised, and
are unaffected.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator

__all__ = ["skip_init"]

_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_",
                   "eye_", "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                   "kaiming_normal_", "orthogonal_", "sparse_")
_lock = threading.Lock()


def _keep(tensor, *args, **kwargs):  # noqa: ANN001
    return tensor


@contextlib.contextmanager
def skip_init() -> Iterator[None]:
    import torch.nn.init as init

    with _lock:
        saved = {name: getattr(init, name) for name in _INIT_FUNCTIONS if hasattr(init, name)}
        for name in saved:
            setattr(init, name, _keep)
        try:
            yield
        finally:
            for name, fn in saved.items():
                setattr(init, name, fn)
