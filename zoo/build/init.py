"""Skip random weight initialisation while building a model whose weights are loaded next.

Building BERT or an EfficientNet spends most of its time drawing random numbers that
``load_state_dict`` then overwrites (60% of ``zoo.load`` before this). Inside ``skip_init()``
torch's ``nn.init`` functions return their tensor untouched. It is a ``TorchFunctionMode``:
it applies to the calling thread only and patches nothing, so a server loading a model on
one thread never changes another thread's initialisation. Only used where a strict
state-dict load follows, so no parameter or persistent buffer keeps uninitialised memory;
non-persistent buffers (position ids, mel filterbanks) are computed, not initialised, and
are unaffected.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

__all__ = ["skip_init"]

_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_",
                   "eye_", "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                   "kaiming_normal_", "orthogonal_", "sparse_")


@contextlib.contextmanager
def skip_init() -> Iterator[None]:
    import torch.nn.init as init
    from torch.overrides import TorchFunctionMode

    skipped = {getattr(init, name) for name in _INIT_FUNCTIONS if hasattr(init, name)}

    class _SkipInit(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                               kwargs: dict | None = None) -> Any:
            kwargs = kwargs or {}
            if func in skipped:  # the tensor, as the init function would return it
                return kwargs["tensor"] if "tensor" in kwargs else args[0]
            return func(*args, **kwargs)

    with _SkipInit():
        yield
