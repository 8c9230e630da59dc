"""Read a Rerun recording back with Rerun's own reader (``rerun.chunk.RrdReader``)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any


def _flatten(value: Any) -> Any:
    # a component cell is a list of instances; a single instance is unwrapped
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def read_recording(path: str | Path) -> dict[str, list[tuple[int | None, dict[str, Any]]]]:
    """Entity path (without the leading ``/``) -> rows ``(step, {component: value})``, by step.

    Static rows have step None. Built on the chunks :class:`rerun.chunk.RrdReader` yields, so a
    test checks what Rerun itself reads from the file.
    """
    from rerun.chunk import RrdReader

    out: dict[str, list[tuple[int | None, dict[str, Any]]]] = defaultdict(list)
    for chunk in RrdReader(Path(path)).stream().to_chunks():
        batch = chunk.to_record_batch()
        names = [n for n in batch.schema.names if ":" in n]
        steps = batch.column("step").to_pylist() if "step" in batch.schema.names else None
        columns = {n: batch.column(n).to_pylist() for n in names}
        for i in range(batch.num_rows):
            row = {n: _flatten(columns[n][i]) for n in names if columns[n][i] is not None}
            out[chunk.entity_path.lstrip("/")].append((None if steps is None else steps[i], row))
    for rows in out.values():
        rows.sort(key=lambda r: -1 if r[0] is None else r[0])
    return dict(out)


def texts(rows: list[tuple[int | None, dict[str, Any]]], component: str = "TextLog:text"):
    """step -> the texts logged at it."""
    out: dict[int | None, list[str]] = defaultdict(list)
    for step, row in rows:
        if component in row:
            out[step].append(row[component])
    return dict(out)
