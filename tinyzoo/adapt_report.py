"""The adaptation report: where every tensor of an adapted model came from.

Each adapter declares what it did to the state dict in a :class:`Changes`; a
:class:`ProvenanceTracker` follows those declarations from the loaded weights to the final
model and refuses anything undeclared: a tensor that appears without being declared new,
one that disappears without being declared removed, or one declared copied whose values
changed (a silently re-initialised layer). The result is an :class:`AdaptationReport`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from tinyzoo.errors import TinyzooError

STATUSES = ("copied", "resampled", "sliced", "new")
ROW_HEADERS = ("tensor", "shape", "status", "from", "detail")


class AdaptationError(TinyzooError):
    """An adapter left the state dict in a state its declarations do not explain."""


@dataclass
class TensorRecord:
    """One tensor of the adapted model: how it relates to the loaded weights.

    ``status`` is ``copied`` (same values, maybe reshaped or renamed), ``resampled`` (a
    kernel resized, ``stats`` says what it kept), ``sliced`` (rows of a pretrained head) or
    ``new`` (initialised here, ``detail`` says how). ``source`` is the key in the loaded
    weights it came from (``None`` for new); ``adapter`` the adapter that last touched it.
    """

    key: str
    status: str
    shape: list[int]
    source: str | None = None
    adapter: str | None = None
    detail: str = ""
    stats: dict[str, Any] | None = None


@dataclass
class Changes:
    """What one adapter did to the state dict, in its own words (keys are state-dict keys).

    Keys the adapter does not mention must come out of it unchanged. Build it with the
    methods below; ``input_size`` is set by adapters that change the size the model expects.
    """

    copied: dict[str, str] = field(default_factory=dict)
    resampled: dict[str, tuple[str, str, dict | None]] = field(default_factory=dict)
    sliced: dict[str, tuple[str, str]] = field(default_factory=dict)
    new: dict[str, str] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    input_size: int | None = None
    notes: list[str] = field(default_factory=list)

    def copy(self, key: str, source: str) -> Changes:
        """``key`` holds ``source``'s values (renamed and/or reshaped, not changed)."""
        self.copied[key] = source
        return self

    def resample(self, key: str, source: str, detail: str, stats: dict | None = None) -> Changes:
        self.resampled[key] = (source, detail, stats)
        return self

    def slice(self, key: str, source: str, detail: str) -> Changes:
        self.sliced[key] = (source, detail)
        return self

    def init(self, key: str, how: str) -> Changes:
        self.new[key] = how
        return self

    def remove(self, key: str, why: str) -> Changes:
        self.removed[key] = why
        return self

    def note(self, text: str) -> Changes:
        self.notes.append(text)
        return self


def _shape(tensor) -> list[int]:
    return [int(s) for s in tensor.shape]


class ProvenanceTracker:
    """Follows each tensor from the loaded state dict through the adapters.

    ``base`` is the model's state dict right after the weights were loaded. Its tensors are
    kept by reference: at the end a tensor reported copied must either be that very tensor
    or hold equal values. Adapters therefore replace tensors rather than write into loaded
    ones (an in-place write would change the reference too and go unseen).
    """

    def __init__(self, base: dict[str, Any]):
        self.base = dict(base)
        self.records = {k: TensorRecord(k, "copied", _shape(v), source=k) for k, v in self.base.items()}
        self.dropped: dict[str, dict[str, str]] = {}

    def apply(self, adapter: str, changes: Changes, state_dict: dict[str, Any]) -> None:
        """Take ``adapter``'s declarations against the model's ``state_dict`` after it ran."""
        before = self.records
        after: dict[str, TensorRecord] = {}
        declared = set(changes.copied) | set(changes.resampled) | set(changes.sliced) | set(changes.new)
        sources = set(changes.copied.values()) | {s for s, *_ in changes.resampled.values()} | {s for s, _ in changes.sliced.values()}
        for key in sources | set(changes.removed):
            if key not in before:
                raise AdaptationError(f"adapter {adapter!r} names {key!r}, which the model did not have before it ran")
        for key, record in before.items():
            if key in state_dict and key not in declared:
                after[key] = record
        for key, why in changes.removed.items():
            if key in state_dict and key not in declared:
                raise AdaptationError(f"adapter {adapter!r} declared {key!r} removed but the model still has it")
            self.dropped[key] = {"adapter": adapter, "why": why}
        for key, source in changes.copied.items():
            after[key] = replace(before[source], key=key, adapter=adapter)
        for key, (source, detail, stats) in changes.resampled.items():
            after[key] = TensorRecord(key, "resampled", [], before[source].source, adapter, detail, stats)
        for key, (source, detail) in changes.sliced.items():
            after[key] = TensorRecord(key, "sliced", [], before[source].source, adapter, detail)
        for key, how in changes.new.items():
            after[key] = TensorRecord(key, "new", [], None, adapter, how)

        undeclared = [k for k in state_dict if k not in after]
        if undeclared:
            raise AdaptationError(
                f"adapter {adapter!r} created {undeclared[0]!r}"
                + (f" and {len(undeclared) - 1} more tensors" if len(undeclared) > 1 else "")
                + " without declaring it new, copied or resampled; refusing to re-initialise it silently"
            )
        vanished = [k for k in before if k not in state_dict and k not in changes.removed and k not in sources]
        if vanished:
            raise AdaptationError(f"adapter {adapter!r} removed {vanished[0]!r} without declaring it")
        for key in declared:
            if key not in state_dict:
                raise AdaptationError(f"adapter {adapter!r} declared {key!r} but the model has no such tensor")
        for key, record in after.items():
            shape = _shape(state_dict[key])
            if record.status == "copied" and record.key == key and key not in changes.copied and shape != record.shape:
                raise AdaptationError(f"adapter {adapter!r} changed the shape of {key!r} ({record.shape} -> {shape}) without declaring it")
            record.shape = shape
        self.records = {k: after[k] for k in state_dict}

    def check_copied(self, state_dict: dict[str, Any]) -> None:
        """Raise when a tensor reported as copied no longer holds its loaded values."""
        import torch

        for key, record in self.records.items():
            if record.status != "copied" or record.source is None:  # a copied record always names its source
                continue
            now, then = state_dict[key], self.base[record.source]
            if now.is_meta or then.is_meta:
                continue
            if _same_memory(now, then):
                continue  # the very tensor that was loaded: nothing replaced it
            if now.numel() != then.numel() or not torch.equal(now.detach().reshape(-1).cpu(), then.detach().reshape(-1).cpu()):
                who = f"adapter {record.adapter!r}" if record.adapter else "an adapter"
                raise AdaptationError(f"{key!r} changed its values but {who} reported it copied from {record.source!r}; refusing to re-initialise it silently")


@dataclass
class AdaptationReport:
    """Every tensor of an adapted model accounted for, with the adapters that made it.

    ``tensors`` lists one :class:`TensorRecord` per state-dict entry, in state-dict order;
    ``dropped`` maps keys of the loaded weights that are gone to the adapter and reason;
    ``adapters`` is the list of ``{"name", "params"}`` applied in order.
    """

    architecture: str
    weights: str
    adapters: list[dict[str, Any]]
    tensors: list[TensorRecord]
    dropped: dict[str, dict[str, str]] = field(default_factory=dict)
    input_size: int | None = None
    notes: list[str] = field(default_factory=list)

    def by_status(self, status: str) -> list[TensorRecord]:
        return [t for t in self.tensors if t.status == status]

    def counts(self) -> dict[str, dict[str, int]]:
        """``status -> {"tensors": n, "values": numel}`` for every status (zeros included)."""
        out = {s: {"tensors": 0, "values": 0} for s in STATUSES}
        for t in self.tensors:
            numel = 1
            for s in t.shape:
                numel *= s
            out[t.status]["tensors"] += 1
            out[t.status]["values"] += numel
        return out

    def rows(self) -> list[list[str]]:
        """Table rows (:data:`ROW_HEADERS`): every tensor that is not a plain copy, then one
        row summing up the copies, then one per group of dropped tensors."""
        rows = []
        for t in self.tensors:
            if t.status == "copied" and t.source == t.key:
                continue
            source = "" if t.source in (None, t.key) else t.source
            rows.append([t.key, "x".join(map(str, t.shape)) or "scalar", t.status, source, _detail(t)])
        plain = [t for t in self.tensors if t.status == "copied" and t.source == t.key]
        if plain:
            values = sum(_numel(t.shape) for t in plain)
            rows.append([f"({len(plain)} other tensors)", f"{_count(values)} values", "copied", "", f"unchanged from {self.weights}"])
        groups: dict[tuple[str, str], list[str]] = {}
        for key, info in self.dropped.items():
            groups.setdefault((info["adapter"], info["why"]), []).append(key)
        for (adapter, why), keys in groups.items():
            prefixes = list(dict.fromkeys(k.split(".")[0] + ".*" for k in keys))
            rows.append([", ".join(prefixes), f"{len(keys)} tensors", "dropped", "", f"{adapter}: {why}"])
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, every tensor, and ``counts``."""
        return {
            "architecture": self.architecture,
            "weights": self.weights,
            "adapters": [dict(a) for a in self.adapters],
            "input_size": self.input_size,
            "counts": self.counts(),
            "tensors": [asdict(t) for t in self.tensors],
            "dropped": {k: dict(v) for k, v in self.dropped.items()},
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdaptationReport:
        """The report back from :meth:`to_dict` output (as stored in config.json)."""
        return cls(
            architecture=data["architecture"],
            weights=data["weights"],
            adapters=[dict(a) for a in data.get("adapters", [])],
            tensors=[TensorRecord(**t) for t in data.get("tensors", [])],
            dropped={k: dict(v) for k, v in data.get("dropped", {}).items()},
            input_size=data.get("input_size"),
            notes=list(data.get("notes", [])),
        )

    def summary(self) -> str:
        """One line: tensors per status."""
        counts = self.counts()
        parts = [f"{counts[s]['tensors']} {s}" for s in STATUSES]
        if self.dropped:
            parts.append(f"{len(self.dropped)} dropped")
        return ", ".join(parts)


def _same_memory(a, b) -> bool:
    return (
        a.device == b.device and a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride()
        and a.data_ptr() == b.data_ptr()
    )


def _numel(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _count(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _detail(t: TensorRecord) -> str:
    text = f"{t.adapter}: {t.detail}" if t.adapter and t.detail else (t.detail or t.adapter or "")
    if t.stats:
        s, n = t.stats.get("sum_kept", {}), t.stats.get("norm_kept", {})
        if s or n:
            text += f"; sum kept {s.get('overall', float('nan')):.3f} (median {s.get('median', float('nan')):.3f}), norm kept {n.get('overall', float('nan')):.3f}"
    return text
