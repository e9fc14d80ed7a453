"""Checkpoints of a training run: writing, reading, verifying and resuming.

A checkpoint is an ``.npz`` archive written atomically with :mod:`febm_ref._io`. It holds the
parameters, the optimiser states, the generator state, the averages and the history, plus a
*fingerprint* of the configuration, target and models; resuming from a checkpoint with a
different fingerprint is a ``ValueError`` naming the differences. Each checkpoint carries a
sha256 digest of its contents: a truncated, corrupted or edited checkpoint is refused with
:class:`CheckpointError` (a ``ValueError``). A checkpoint that cannot be written (a full disk)
raises :class:`CheckpointWriteError` (an ``OSError``) naming the iteration; the previous
checkpoint on disk is left intact. The state protocol of stateful samplers and evaluators
(``state_arrays`` / ``load_state_arrays``) is described in :mod:`febm_ref.training`.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Optional

import numpy as np

from febm_ref._io import atomic_save_npz
from febm_ref.training.state import WORK_COUNTERS

__all__ = ["CheckpointError", "CheckpointWriteError", "Checkpointer", "load_checkpoint", "has_state_protocol",
           "STATE_ROLES", "resume_state"]


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (e.g. a full disk); the previous one is left intact."""


def _hash_params(params: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(params, dtype=np.float64).tobytes()).hexdigest()[:16]


def _model_description(model) -> dict:
    if model is None:
        return {"type": None}
    desc = {"type": type(model).__name__, "n_params": int(model.n_params), "dim": int(model.dim)}
    for attr in ("hidden", "activation", "output_bias", "log_sigma"):
        if hasattr(model, attr):
            value = getattr(model, attr)
            desc[attr] = list(value) if isinstance(value, tuple) else value
    return desc


def _fingerprint(config, target, energy, critic, sampler_name) -> dict:
    return {
        "config": config.as_dict(),
        "target": target.describe() if hasattr(target, "describe") else type(target).__name__,
        "energy": {**_model_description(energy), "initial_params": _hash_params(energy.params)},
        "critic": ({**_model_description(critic), "initial_params": _hash_params(critic.params)}
                   if critic is not None else None),
        "sampler": sampler_name,
    }


def _diff(a, b, prefix=""):
    out = []
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            out += _diff(a.get(key, "<absent>"), b.get(key, "<absent>"), f"{prefix}{key}.")
        return out
    if a != b:
        out.append(f"{prefix.rstrip('.')}: checkpoint {a!r} vs requested {b!r}")
    return out


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted: unreadable (truncated, not an ``.npz``), or whose
    contents do not match the sha256 digest written with them (edited or corrupted)."""


def _checkpoint_digest(meta: dict, arrays: dict) -> str:
    """sha256 over the metadata (canonical JSON, without ``integrity``) and every array's name,
    dtype, shape and bytes, in name order: any change to a saved value changes it."""
    h = hashlib.sha256(json.dumps({k: v for k, v in meta.items() if k != "integrity"}, sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _unreadable(path, why: str) -> CheckpointError:
    return CheckpointError(f"the checkpoint at {path} {why}; it was not used. Delete it to restart the run "
                           "from iteration 0 (without --resume), or restore a good copy")


def load_checkpoint(path) -> dict:
    """Read a checkpoint written by :func:`train`: ``{"meta": dict, arrays...}``.

    The contents are checked against the sha256 digest stored with them (``meta["integrity"]``,
    removed from the returned ``meta``).

    Raises
    ------
    ValueError
        No file at ``path``.
    CheckpointError
        A truncated or corrupted file, one that is not a checkpoint, or contents that do not match
        their digest (never a silent resume from altered state).
    """
    import zipfile

    path = Path(path)
    if not path.exists():
        raise ValueError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise _unreadable(path, "is a single .npy array, not a checkpoint archive")
            out = {key: data[key] for key in data.files}
    except CheckpointError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise _unreadable(path, f"is unreadable, truncated or corrupted ({type(exc).__name__}: {exc})") from exc
    if "meta_json" not in out:
        raise _unreadable(path, "has no metadata (meta_json): it is not a febm-ref checkpoint")
    try:
        meta = json.loads(str(out.pop("meta_json")))
    except ValueError as exc:
        raise _unreadable(path, f"has corrupted metadata ({exc})") from exc
    stored = meta.get("integrity", {}).get("sha256") if isinstance(meta, dict) else None
    if stored is None:
        raise _unreadable(path, "has no integrity digest (written by an older febm-ref, or edited)")
    if _checkpoint_digest(meta, out) != stored:
        raise _unreadable(path, "does not match its sha256 digest (edited or corrupted)")
    meta.pop("integrity")
    out["meta"] = meta
    return out


STATE_ROLES = ("sampler", "exact_divergence")
"""The arguments of :func:`train` whose state travels in the checkpoint (module docstring)."""
_STATE_NAME = re.compile(r"^[A-Za-z0-9_.]+$")


def has_state_protocol(obj, role: str = "object") -> bool:
    """True when ``obj`` defines both ``state_arrays`` and ``load_state_arrays`` (module docstring).

    Raises
    ------
    TypeError
        When it defines only one of the two.
    """
    has_get = callable(getattr(obj, "state_arrays", None))
    has_load = callable(getattr(obj, "load_state_arrays", None))
    if has_get != has_load:
        present, missing = ("state_arrays", "load_state_arrays") if has_get else ("load_state_arrays",
                                                                                 "state_arrays")
        raise TypeError(f"{role} {type(obj).__name__} defines {present} but not {missing}: a stateful "
                        "callable needs both (see the module docstring of febm_ref.training)")
    return has_get


def _state_copy(obj, role: str) -> dict:
    """Copies of ``obj.state_arrays()``, checked against the protocol."""
    arrays = obj.state_arrays()
    if not isinstance(arrays, dict):
        raise TypeError(f"{role} {type(obj).__name__}.state_arrays() must return a dict of arrays, "
                        f"got {type(arrays).__name__}")
    out = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not _STATE_NAME.match(name):
            raise TypeError(f"{role} state name {name!r} must be a non-empty string of letters, digits, "
                            "'_' and '.'")
        a = np.array(value, copy=True)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{role} state array {name!r} has dtype {a.dtype}; only boolean, integer and "
                            "float arrays can be checkpointed")
        out[name] = a
    return out


def _check_checkpoint_state(ck: dict, role: str, obj, stateful: bool, path) -> Optional[dict]:
    """The arrays of ``role`` in checkpoint ``ck`` (None for a stateless role), after checking that
    the checkpoint and the object agree on having state and on its names."""
    names = ck["meta"].get("state", {}).get(role)
    kind = type(obj).__name__
    if names is None and stateful:
        raise ValueError(f"cannot resume: the checkpoint at {path} holds no {role} state, but the {role} "
                         f"{kind} carries state (state_arrays/load_state_arrays); resuming would restart "
                         "that state and break the continuation. Start a fresh run")
    if names is not None and not stateful:
        raise ValueError(f"cannot resume: the checkpoint at {path} holds the state of a stateful {role} "
                         f"({', '.join(names) or 'no arrays'}), but the {role} {kind} has no "
                         f"load_state_arrays to take it. Resume with the {role} of the original run")
    if names is None:
        return None
    current = sorted(obj.state_arrays())
    if sorted(names) != current:
        raise ValueError(f"cannot resume: the {role} state in the checkpoint at {path} has arrays "
                         f"{sorted(names)}, the {role} {kind} has {current}")
    return {name: ck[f"{role}.{name}"] for name in names}


class Checkpointer:
    """Writes the checkpoints of one run to ``path`` every ``every`` iterations (the loop decides
    when); ``last`` is the iteration of the last checkpoint written (None before the first).

    ``owners`` maps each of :data:`STATE_ROLES` to its object and ``stateful`` says which of
    them follow the state protocol; ``opt_e``/``opt_h`` turn optimiser states into arrays."""

    def __init__(self, path, every: int, fingerprint: dict, opt_e, opt_h, owners: dict, stateful: dict):
        self.path, self.every, self.fingerprint = path, every, fingerprint
        self.opt_e, self.opt_h, self.owners, self.stateful = opt_e, opt_h, owners, stateful
        self.last: Optional[int] = None

    def save(self, state, hist: dict, exact_state: Optional[dict] = None) -> None:
        """Checkpoint the committed ``state`` with the history ``hist``; the sampler's state is
        ``state.sampler_state`` and the evaluator's ``exact_state`` when given (the state before an
        evaluation that an interrupt cut short), else the live one."""
        given = {"sampler": state.sampler_state, "exact_divergence": exact_state}
        states = {role: (given[role] if given[role] is not None else _state_copy(self.owners[role], role))
                  for role in STATE_ROLES if self.stateful[role]}
        meta = {"fingerprint": self.fingerprint, "iteration": state.iteration, "rng_state": state.rng_state,
                "avg_count": state.avg_count,
                "work": dict(zip(WORK_COUNTERS, state.work)) if state.work is not None else None}
        if states:  # absent for stateless runs: their checkpoints are as before
            meta["state"] = {role: (sorted(states[role]) if role in states else None) for role in STATE_ROLES}
        arrays = {"meta_json": np.array(json.dumps(meta)), "theta": state.theta, "avg": state.avg}
        for role, named in states.items():
            arrays.update({f"{role}.{name}": value for name, value in named.items()})
        if state.omega is not None:
            arrays["omega"] = state.omega
            arrays.update({"opt_h_" + k: v for k, v in self.opt_h.state_arrays(state.opt_h).items()})
        arrays.update({"opt_e_" + k: v for k, v in self.opt_e.state_arrays(state.opt_e).items()})
        arrays.update({"hist_" + k: v for k, v in hist.items()})
        meta["integrity"] = {"sha256": _checkpoint_digest(meta, {k: v for k, v in arrays.items()
                                                                  if k != "meta_json"})}
        arrays["meta_json"] = np.array(json.dumps(meta))
        try:
            atomic_save_npz(self.path, **arrays)
        except OSError as exc:
            kept = (f"the previous checkpoint (iteration {self.last}) is intact" if self.last is not None
                    else "no earlier checkpoint exists")
            raise CheckpointWriteError(exc.errno, f"cannot write the checkpoint of iteration {state.iteration}: "
                                       f"{exc.strerror}; {kept}. Free space (or fix the directory) and "
                                       "continue with --resume") from exc
        self.last = state.iteration


def resume_state(ckpt: Checkpointer, state, hist: dict):
    """The state saved at ``ckpt.path`` (which must match ``ckpt.fingerprint`` and hold state for
    exactly the stateful roles), loaded over ``state``; the history is loaded into ``hist`` and
    the stateful objects' states into them. Returns the resumed ``TrainState``."""
    path = ckpt.path
    ck = load_checkpoint(path)
    differences = _diff(ck["meta"]["fingerprint"], json.loads(json.dumps(ckpt.fingerprint)))
    if differences:
        raise ValueError("cannot resume: the checkpoint at " f"{path} belongs to a different "
                         "configuration (" + "; ".join(differences) + "). Use a new --out directory "
                         "or the original settings")
    saved_state = {role: _check_checkpoint_state(ck, role, ckpt.owners[role], ckpt.stateful[role], path)
                   for role in STATE_ROLES}
    theta = ck["theta"].copy()
    changes = {"iteration": int(ck["meta"]["iteration"]), "theta": theta, "energy": state.energy.with_params(theta)}
    if state.omega is not None:
        omega = ck["omega"].copy()
        changes.update(omega=omega, critic=state.critic.with_params(omega),
                       opt_h=ckpt.opt_h.state_from_arrays({k[6:]: v for k, v in ck.items() if k.startswith("opt_h_")}))
    changes["opt_e"] = ckpt.opt_e.state_from_arrays({k[6:]: v for k, v in ck.items() if k.startswith("opt_e_")})
    changes["rng_state"] = ck["meta"]["rng_state"]
    for key in hist:
        hist[key] = ck["hist_" + key].copy()
    changes.update(avg=ck["avg"].copy(), avg_count=int(ck["meta"]["avg_count"]))
    saved_work = ck["meta"].get("work")  # absent in checkpoints written before the counters
    changes["work"] = (tuple(int(saved_work[k]) for k in WORK_COUNTERS) if saved_work is not None else None)
    for role in STATE_ROLES:
        if saved_state[role] is not None:
            ckpt.owners[role].load_state_arrays(saved_state[role])
    ckpt.last = changes["iteration"]
    return state._replace(**changes)
