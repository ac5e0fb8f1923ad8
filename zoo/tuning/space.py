"""``zoo tune``'s search space: parameters over ``zoo.train`` options, read from
``--param`` flags, a TOML file or a dict, checked before any training starts.

One syntax everywhere (flags, TOML strings, dict strings)::

    lr=1e-4:1e-2:log        a float range, log-uniform
    weight_decay=0:0.1      a float range, uniform
    epochs=3:12:int         whole numbers (``:int:log`` for a log scale)
    freeze=auto,none,all    choices (numbers and true/false are read as such; none is
                            None for an option that may be None: adapter=lora,none)

In TOML or a dict a list is a set of choices and a table gives ``low``/``high`` with
optional ``log``, ``int`` and ``step``. No optuna or torch here: a bad space is one line
before anything heavy is imported.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

__all__ = ["Param", "parse_param", "parse_space", "read_space", "default_space",
           "check_fixed", "parse_sets", "tunable_names", "require_optuna", "describe"]

# TrainConfig fields zoo tune sets itself or that are plumbing, not hyper-parameters
_NOT_TUNABLE = ("loggers", "progress", "columns", "task", "on_bad_data", "checkpoint_every",
                "log_every", "eval_batch_size")
_SYNTAX = ("NAME=LOW:HIGH[:log][:int] or NAME=A,B,C, e.g. --param lr=1e-4:1e-2:log, "
           "--param epochs=3:12:int, --param freeze=auto,none,all")


def require_optuna() -> Any:
    """optuna, imported on first use: listing and --help never pay for it."""
    try:
        import optuna
    except ImportError:
        raise ZooError("zoo tune needs optuna: pip install optuna (or zoo-mm[tune])") from None
    return optuna


def _fields() -> dict[str, str]:
    """TrainConfig field -> its annotation as written (``"int | None"``): read at call
    time, so options other modules add (``adapter``, ``lora_r``) are tunable at once."""
    from zoo.training.config import TrainConfig

    return {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}


def tunable_names() -> list[str]:
    return [n for n in _fields() if n not in _NOT_TUNABLE]


def _check_name(name: str, what: str = "parameter") -> None:
    if name not in tunable_names():
        raise ZooError(f"unknown {what} {name!r}: zoo tune searches zoo.train options "
                       f"{', '.join(tunable_names())}")


@dataclass(frozen=True)
class Param:
    """One dimension of the search: a range (``float``/``int``) or ``choices``."""

    name: str
    kind: str  # "float", "int" or "choice"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna trial draws (or an enqueued retry fixes)."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high),
                                   step=self.step, log=self.log)

    def describe(self) -> str:
        if self.kind == "choice":
            return ", ".join(str(c) for c in self.choices)  # no "|": it sits in a table
        scale = [x for x in ("int" if self.kind == "int" else "", "log" if self.log else "",
                             f"step {self.step}" if self.step else "") if x]
        return f"{self.low:g} .. {self.high:g}" + (f" ({', '.join(scale)})" if scale else "")

    def record(self) -> dict[str, Any]:
        """As tune.json and the study's user attrs keep it."""
        if self.kind == "choice":
            return {"kind": "choice", "choices": list(self.choices)}
        out: dict[str, Any] = {"kind": self.kind, "low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step:
            out["step"] = self.step
        return out


def describe(record: dict[str, Any]) -> str:
    """A recorded parameter (``Param.record()``, as in tune.json) in words."""
    rec = {k: v for k, v in record.items() if k != "kind"}
    return Param("", record.get("kind", "float"), **{**rec, "choices": tuple(
        rec.get("choices", ()))}).describe()


def _scalar(text: str) -> Any:
    """``"3"`` -> 3, ``"1e-3"`` -> 0.001, ``"true"`` -> True, anything else a string."""
    t = text.strip()
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    for kind in (int, float):
        try:
            return kind(t)
        except ValueError:
            pass
    return t


def _kind_of(name: str) -> str:
    """What values an option takes, from its annotation: "int", "float", "bool", "str"
    or "any"."""
    parts = {p.strip() for p in _fields()[name].split("|")}
    for kind in ("float", "int", "bool", "str"):
        if kind in parts:
            return kind
    return "any"


def _optional(name: str) -> bool:
    return "None" in {p.strip() for p in _fields()[name].split("|")}


def _coerce(name: str, value: Any) -> Any:
    """``none``/``null`` is None for an option that may be None (``adapter``,
    ``encoder_lr``); ``freeze``'s policy ``none`` stays a word."""
    if isinstance(value, str) and value.lower() in ("none", "null") and _optional(name):
        return None
    return value


def _check_value(name: str, value: Any) -> None:
    kind = _kind_of(name)
    if value is None and _optional(name):
        kind = "any"
    ok = {"int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, (int, float)) and not isinstance(value, bool),
          "bool": isinstance(value, bool), "str": isinstance(value, str)}.get(kind, True)
    if not ok:
        hint = f" (use {name}=LOW:HIGH:int)" if kind == "int" else ""
        raise ZooError(f"{name} takes {'whole numbers' if kind == 'int' else kind} values, "
                       f"not {value!r}{hint}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ZooError(f"{name}: {value!r} is not a finite number")
    from zoo.training.config import make_config

    try:  # the options' own checks (scheduler names, precision, ...), no torch involved
        make_config({name: value})
    except ZooError as e:
        raise ZooError(f"{name}={value!r}: {e}") from None
    except (TypeError, ValueError) as e:
        raise ZooError(f"{name}={value!r}: {e}") from None


def _range(name: str, low: Any, high: Any, log: bool, is_int: bool, step: Any) -> Param:
    for v in (low, high):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ZooError(f"{name}: range bounds must be numbers, not {v!r} ({_SYNTAX})")
    if not low < high:
        raise ZooError(f"{name}: the range {low}:{high} is empty (LOW must be below HIGH)")
    if log and low <= 0:
        raise ZooError(f"{name}: a log range needs LOW > 0, not {low}")
    if is_int and not (float(low).is_integer() and float(high).is_integer()):
        raise ZooError(f"{name}: an int range needs whole-number bounds, not {low}:{high}")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float))
                             or step <= 0 or log):
        raise ZooError(f"{name}: step must be a positive number and cannot go with log")
    if _kind_of(name) == "int" and not is_int:
        raise ZooError(f"{name} takes whole numbers: mark the range int, e.g. "
                       f"{name}={low:g}:{high:g}:int")
    p = Param(name, "int" if is_int else "float", int(low) if is_int else float(low),
              int(high) if is_int else float(high), log, step)
    for v in (p.low, p.high):
        _check_value(name, float(v) if _kind_of(name) == "float" else v)
    return p


def _choices(name: str, values: list[Any]) -> Param:
    values = [_coerce(name, v) for v in values]
    if len(values) < 2:
        raise ZooError(f"{name}: give at least two choices, or fix the option with "
                       f"--set {name}=VALUE")
    if len(set(map(repr, values))) != len(values):
        raise ZooError(f"{name}: the choices {values} repeat a value")
    for v in values:
        if v is not None and not isinstance(v, (bool, int, float, str)):
            raise ZooError(f"{name}: a choice must be a number, true/false or a word, not {v!r}")
        _check_value(name, v)
    return Param(name, "choice", choices=tuple(values))


def parse_param(text: str) -> Param:
    """``--param NAME=SPEC`` -> a Param (one line naming the fix when malformed)."""
    name, sep, spec = text.partition("=")
    name, spec = name.strip(), spec.strip()
    if not sep or not name or not spec:
        raise ZooError(f"--param {text!r}: expected {_SYNTAX}")
    return _from_spec(name, spec)


def _from_spec(name: str, spec: Any) -> Param:
    """A Param from a flag string, a list of choices or a table (TOML / dict)."""
    _check_name(name)
    if isinstance(spec, (list, tuple)):
        return _choices(name, list(spec))
    if isinstance(spec, dict):
        extra = set(spec) - {"low", "high", "log", "int", "step", "choices"}
        if extra:
            raise ZooError(f"{name}: unknown key(s) {sorted(extra)}; a range takes low, high, "
                           f"log, int, step; choices take choices = [...]")
        if "choices" in spec:
            return _choices(name, list(spec["choices"]))
        if "low" not in spec or "high" not in spec:
            raise ZooError(f"{name}: a range needs low and high")
        return _range(name, spec["low"], spec["high"], bool(spec.get("log")),
                      bool(spec.get("int")), spec.get("step"))
    if not isinstance(spec, str):
        raise ZooError(f"{name} = {spec!r} is one value: search a range or choices "
                       f"({_SYNTAX}), or fix it with --set {name}={spec}")
    if ":" in spec:
        low, high, *flags = (x.strip() for x in spec.split(":"))
        bad = [f for f in flags if f not in ("log", "int")]
        if bad or not low or not high:
            raise ZooError(f"--param {name}={spec}: expected {_SYNTAX}")
        lo, hi = _scalar(low), _scalar(high)
        return _range(name, lo, hi, "log" in flags, "int" in flags, None)
    if "," in spec:
        values = [x.strip() for x in spec.split(",")]
        if not all(values):
            raise ZooError(f"--param {name}={spec}: an empty choice ({_SYNTAX})")
        return _choices(name, [_scalar(v) for v in values])
    raise ZooError(f"--param {name}={spec} is one value: search a range or choices "
                   f"({_SYNTAX}), or fix it with --set {name}={spec}")


def read_space(path: str | Path) -> dict[str, Any]:
    """A TOML space file: one key per parameter (a flag string, a list or a table)."""
    import tomllib

    p = Path(path)
    if not p.is_file():
        raise ZooError(f"--space {path}: no such file")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ZooError(f"--space {path}: not valid TOML ({e})") from None


def parse_space(space: Any) -> list[Param]:
    """A dict (name -> spec), a TOML path, or Params -> the checked Params. Empty is an
    error: leave the space out for the default one."""
    if isinstance(space, (str, Path)):
        space = read_space(space)
    if isinstance(space, dict):
        params = [p if isinstance(p, Param) else _from_spec(str(n), p)
                  for n, p in space.items()]
    else:
        params = list(space or [])
    if not params:
        raise ZooError("the search space is empty: give --param NAME=LOW:HIGH (or choices), "
                       "a --space file with at least one parameter, or neither for the "
                       "default space")
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise ZooError(f"the search space names a parameter twice: {sorted(names)}")
    return params


def check_fixed(fixed: dict[str, Any], params: list[Param]) -> dict[str, Any]:
    """Options held constant in every trial (``--set``): known names, valid values, and
    not also searched."""
    for name, value in fixed.items():
        _check_name(name, "option")
        if name in {p.name for p in params}:
            raise ZooError(f"{name} is both searched (--param) and fixed (--set): keep one")
        _check_value(name, value)
    return fixed


def default_space(pretrained: bool) -> list[Param]:
    """What usually matters when fine-tuning: the learning rate(s), the length of the run,
    regularisation; and for pretrained encoders how much of them to train (the freeze
    policy; LP-FT under ``auto``)."""
    space = [Param("lr", "float", 1e-4, 3e-2, log=True),
             Param("epochs", "int", 3, 12),
             Param("weight_decay", "float", 1e-4, 0.3, log=True)]
    if pretrained:
        space += [Param("encoder_lr", "float", 1e-6, 1e-4, log=True),
                  Param("freeze", "choice", choices=("auto", "none", "all"))]
    return space


def parse_sets(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``--set NAME=VALUE`` flags -> fixed options (values read as numbers when they are)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ZooError(f"--set {pair!r}: expected NAME=VALUE, e.g. --set finetune_epochs=0")
        out[name.strip()] = _scalar(value)
        if name.strip() in _fields():
            out[name.strip()] = _coerce(name.strip(), out[name.strip()])
    return out
