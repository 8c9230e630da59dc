"""The durable episode store: one HDF5 file per finished episode (robomimic-style), crash-safe.

Layout::

    root/
      daft_store.json               marker + format version
      index.jsonl                   one JSON line per episode (path, task, kind, length, success, ...)
      .lock                         flock() guard for index writes
      <task>/<kind>/ep_<utc time>_<pid>_<random>.h5

Durability (nothing recorded may be lost, issue 3): :meth:`EpisodeStore.add` writes the episode
through :func:`daft_env.durable.replacing` (``.tmp-<pid>-<name>.partial`` in the final directory,
fsynced, renamed with ``os.replace`` to its final name, the directory fsynced so that the rename
itself survives a power cut). Only then is a line appended (and fsynced) to the index. A process killed at any point therefore leaves either the complete file or
an ignorable ``.tmp-*`` file; the index is a cache that is repaired from the directory listing (a
file the index lacks is opened once and added; an index line whose file is gone is dropped), so a
crash between rename and index append loses nothing. Readers only list final names, so a reader
running while a writer adds is safe.

Integrity: every dataset is chunked with the Fletcher-32 checksum filter, and the file's root
attribute ``complete`` is written last. A file that fails to open, lacks ``complete``, fails a
checksum or has inconsistent shapes is reported by name (a :class:`UserWarning` and
:attr:`EpisodeStore.skipped`) and skipped; iteration never crashes on it.

Images (uint8 arrays of shape (T+1, H, W, 3)) are chunked one frame per chunk and compressed (lzf by
default, gzip optional).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

from daft_env.durable import clean_partials, fsync_path, replacing
from daft_env.durable import write_text as durable_write_text
from daft_env.episode import EPISODE_KINDS, NULL_COMMAND, Episode
from daft_env.errors import CorruptEpisodeError, StoreError
from daft_env.tasks import TASKS, get_task
from hardware.errors import ConfigError

FORMAT_VERSION = 1
MARKER = "daft_store.json"
INDEX = "index.jsonl"
EPISODE_GLOB = "ep_*.h5"
COMPRESSIONS = ("lzf", "gzip", None)


class Transition(NamedTuple):
    """One learner transition read from the store.

    ``obs``/``next_obs`` are dicts of per-step arrays; when the episode carries frozen-backbone
    embeddings (Eq. 3) they appear in both under the key ``"embedding"``. ``truncated`` is True on
    the last step of an episode that ended without ``terminated``.
    """

    obs: dict[str, np.ndarray]
    action: np.ndarray
    reward: float
    next_obs: dict[str, np.ndarray]
    terminated: bool
    truncated: bool
    intervened: bool
    refinement_command: str
    task_id: int


@dataclass(frozen=True)
class IndexEntry:
    """One line of the index: what an episode file holds, known without opening it."""

    path: str  # relative to the store root
    task: str
    kind: str
    length: int
    success: bool
    n_interventions: int  # distinct takeovers (runs of consecutive intervened steps)
    n_intervened_steps: int

    def to_json(self) -> str:
        """One index line."""
        return json.dumps(self.__dict__, sort_keys=True)


def count_takeovers(intervened: np.ndarray) -> int:
    """Number of maximal runs of consecutive intervened steps."""
    f = np.asarray(intervened, dtype=bool).reshape(-1)
    if f.size == 0:
        return 0
    return int(f[0]) + int(np.sum(f[1:] & ~f[:-1]))


def _task_order(name: str) -> tuple[int, str]:
    """Sort key of a task: the registry's global id, then (unregistered tasks) the name."""
    spec = TASKS.get(name)
    return (spec.task_id if spec is not None else len(TASKS), name)


def _is_image(arr: np.ndarray) -> bool:
    return arr.dtype == np.uint8 and arr.ndim == 4 and arr.shape[-1] in (1, 3, 4)


def validate_episode(ep: Episode) -> None:
    """Check that an episode record is self-consistent; raise :class:`StoreError` naming the field."""
    if ep.kind not in EPISODE_KINDS:
        raise StoreError(f"episode kind must be one of {list(EPISODE_KINDS)}; got {ep.kind!r}")
    try:
        spec = get_task(ep.task)
    except ConfigError as exc:
        raise StoreError(str(exc)) from exc
    if spec.builtin and int(ep.task_id) != spec.task_id:
        raise StoreError(
            f"task_id {ep.task_id} does not match task {ep.task!r} (id {spec.task_id})"
        )
    T = len(ep.actions)
    if T < 1:
        raise StoreError("an episode needs at least one step")
    checks = {
        "actions": np.shape(ep.actions)[:1],
        "policy_actions": np.shape(ep.policy_actions)[:1],
        "intended_actions": np.shape(ep.labels)[:1],
        "intervened": np.shape(ep.intervened)[:1],
        "rewards": np.shape(ep.rewards)[:1],
        "terminated": np.shape(ep.terminated)[:1],
        "refinement_commands": (len(ep.refinement_commands),),
    }
    for name, shape in checks.items():
        if shape != (T,):
            raise StoreError(
                f"episode field {name!r} has {shape[0] if shape else 0} steps; expected T={T}"
            )
    if not ep.observations:
        raise StoreError("episode has no observations")
    for key, arr in ep.observations.items():
        if "/" in key or not key:
            raise StoreError(f"observation key {key!r} is not a valid name")
        if np.shape(arr)[:1] != (T + 1,):
            raise StoreError(
                f"observation {key!r} has {np.shape(arr)[:1]} entries; expected T+1={T + 1} "
                "(the final observation is included)"
            )
    if ep.embeddings is not None and np.shape(ep.embeddings)[:1] != (T + 1,):
        raise StoreError(f"embeddings must have T+1={T + 1} rows; got {np.shape(ep.embeddings)}")
    try:
        json.dumps(ep.metadata)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"episode metadata must be JSON-serialisable: {exc}") from exc


def _write_dataset(group: h5py.Group, name: str, arr: np.ndarray, compression: str | None) -> None:
    arr = np.ascontiguousarray(arr)
    if arr.size == 0:
        group.create_dataset(name, data=arr)
        return
    if _is_image(arr):
        chunks = (1, *arr.shape[1:])
        opts: dict[str, Any] = {"compression": compression}
        if compression == "gzip":
            opts["compression_opts"] = 4
        group.create_dataset(name, data=arr, chunks=chunks, fletcher32=True, **opts)
    else:
        group.create_dataset(name, data=arr, chunks=arr.shape, fletcher32=True)


def write_episode_file(path: Path, ep: Episode, compression: str | None = "lzf") -> None:
    """Write one episode to ``path``; no atomicity or fsync (:meth:`EpisodeStore.add` has them).

    Write it through :func:`daft_env.durable.replacing`, as :meth:`EpisodeStore.add` does.
    """
    with h5py.File(path, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["task"] = ep.task
        f.attrs["task_id"] = int(ep.task_id)
        f.attrs["instruction"] = ep.instruction
        f.attrs["kind"] = ep.kind
        f.attrs["success"] = bool(ep.success)
        f.attrs["length"] = len(ep)
        f.attrs["metadata"] = json.dumps(ep.metadata, sort_keys=True)
        obs = f.create_group("observations")
        for key, arr in ep.observations.items():
            _write_dataset(obs, key, np.asarray(arr), compression)
        _write_dataset(f, "actions", np.asarray(ep.actions), compression)
        _write_dataset(f, "policy_actions", np.asarray(ep.policy_actions), compression)
        if ep.intended_actions is not None:
            _write_dataset(f, "intended_actions", np.asarray(ep.intended_actions), compression)
        _write_dataset(f, "intervened", np.asarray(ep.intervened, dtype=bool), compression)
        _write_dataset(f, "rewards", np.asarray(ep.rewards, dtype=np.float32), compression)
        _write_dataset(f, "terminated", np.asarray(ep.terminated, dtype=bool), compression)
        # fixed-length UTF-8 bytes rather than variable-length strings: HDF5 cannot checksum the
        # latter (their bytes live in a global heap outside the Fletcher-32 filtered chunks)
        encoded = [str(c).encode("utf-8") for c in ep.refinement_commands]
        width = max(1, max(len(b) for b in encoded))
        _write_dataset(f, "refinement_commands", np.array(encoded, dtype=f"S{width}"), compression)
        if ep.embeddings is not None:
            _write_dataset(f, "embeddings", np.asarray(ep.embeddings), compression)
        # written last: a file without it was never finished
        f.attrs["complete"] = True
        f.flush()


def read_episode_file(path: Path) -> Episode:
    """Read and check one episode file; raise :class:`CorruptEpisodeError` naming it on any fault."""
    try:
        with h5py.File(path, "r") as f:
            if not f.attrs.get("complete", False):
                raise CorruptEpisodeError(f"{path}: episode file was never completed")
            version = int(f.attrs["format_version"])
            if version > FORMAT_VERSION:
                raise CorruptEpisodeError(
                    f"{path}: written by a newer DAFT (format {version} > {FORMAT_VERSION}); upgrade"
                )
            embeddings = f["embeddings"][()] if "embeddings" in f else None
            ep = Episode(
                task=str(f.attrs["task"]),
                task_id=int(f.attrs["task_id"]),
                instruction=str(f.attrs["instruction"]),
                kind=str(f.attrs["kind"]),
                observations={k: f["observations"][k][()] for k in f["observations"]},
                actions=f["actions"][()],
                policy_actions=f["policy_actions"][()],
                intervened=f["intervened"][()].astype(bool),
                rewards=f["rewards"][()],
                terminated=f["terminated"][()].astype(bool),
                refinement_commands=[
                    bytes(c).decode("utf-8") for c in f["refinement_commands"][()]
                ],
                success=bool(f.attrs["success"]),
                embeddings=embeddings,
                metadata=json.loads(f.attrs["metadata"]),
                # absent in files written before it was recorded: they read as the actions
                intended_actions=f["intended_actions"][()] if "intended_actions" in f else None,
            )
            if int(f.attrs["length"]) != len(ep):
                raise CorruptEpisodeError(f"{path}: length attribute disagrees with the data")
    except CorruptEpisodeError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise CorruptEpisodeError(
            f"{path}: unreadable episode file ({type(exc).__name__}: {exc})"
        ) from exc
    try:
        validate_episode(ep)
    except StoreError as exc:
        raise CorruptEpisodeError(f"{path}: inconsistent episode ({exc})") from exc
    return ep


def _entry_for(rel: str, ep: Episode) -> IndexEntry:
    return IndexEntry(
        path=rel,
        task=ep.task,
        kind=ep.kind,
        length=len(ep),
        success=bool(ep.success),
        n_interventions=count_takeovers(ep.intervened),
        n_intervened_steps=int(np.sum(np.asarray(ep.intervened, dtype=bool))),
    )


class EpisodeStore:
    """Per-task, per-kind episode files with a durable index (see the module docstring).

    Args:
        root: the store directory.
        mode: ``"a"`` (default) creates the store if missing and allows :meth:`add`; ``"r"``
            requires an existing store and refuses :meth:`add`.
        compression: image compression, ``"lzf"`` (fast, default), ``"gzip"`` or None.

    Raises:
        StoreError: ``mode="r"`` and no store at ``root`` (the message says how to create one), or
            ``root`` is a file.
        ConfigError: an unknown mode or compression.
    """

    def __init__(
        self, root: str | os.PathLike[str], mode: str = "a", compression: str | None = "lzf"
    ):
        if mode not in ("r", "a"):
            raise ConfigError(f"store mode must be 'r' (read) or 'a' (read and add); got {mode!r}")
        if compression not in COMPRESSIONS:
            raise ConfigError(
                f"compression must be one of {list(COMPRESSIONS)}; got {compression!r}"
            )
        self.root = Path(root).expanduser()
        self.mode = mode
        self.compression = compression
        #: files found corrupt since this object was created (reported once each)
        self.skipped: list[Path] = []
        self._fingerprints: set[str | None] | None = None  # read by the first holds()
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"episode store path {self.root} is a file, not a directory")
        if not self.root.exists():
            if mode == "r":
                raise StoreError(
                    f"no episode store at {self.root}. Create one by recording demonstrations: "
                    f"`daft collect --store {self.root} --task all --episodes 20 --device expert`"
                )
            self.root.mkdir(parents=True, exist_ok=True)
        marker = self.root / MARKER
        if mode == "a" and not marker.exists():
            durable_write_text(marker, json.dumps({"format_version": FORMAT_VERSION}) + "\n")
        if mode == "a":
            self.clean_temp_files()

    # ---------------------------------------------------------------- writing

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / ".lock", "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _append_index(self, entries: list[IndexEntry]) -> None:
        if not entries:
            return
        with self._locked():
            path = self.root / INDEX
            new = not path.exists()
            with open(path, "a", encoding="utf-8") as fh:
                # a killed appender may have left a line without its newline; start a fresh line
                if fh.tell() > 0:
                    with open(path, "rb") as rb:
                        rb.seek(-1, os.SEEK_END)
                        if rb.read(1) != b"\n":
                            fh.write("\n")
                fh.write("".join(e.to_json() + "\n" for e in entries))
                fh.flush()
                os.fsync(fh.fileno())
            if new:
                fsync_path(self.root)

    def add(self, episode: Episode) -> Path:
        """Durably write one finished episode; return its final path.

        When this returns the episode is on disk under its final name and listed in the index.

        Raises:
            StoreError: read-only store, or an inconsistent episode (the message names the field).
        """
        if self.mode != "a":
            raise StoreError(
                f"store {self.root} was opened read-only (mode='r'); open it with mode='a'"
            )
        validate_episode(episode)
        if self._fingerprints is not None and "fingerprint" in episode.metadata:
            self._fingerprints.add(episode.metadata["fingerprint"])
        directory = self.root / episode.task / episode.kind
        new_dir = not directory.exists()
        directory.mkdir(parents=True, exist_ok=True)
        if new_dir:
            fsync_path(directory.parent)
            fsync_path(self.root)
        # One clock reading for both parts of the name: names sort oldest first (the order
        # ``episodes`` yields). Two readings straddling a second boundary once filed an episode
        # a second early and reordered a seeded run's listing.
        now = time.time_ns()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 10**9))
        name = f"ep_{stamp}_{now % 10**9:09d}_{os.getpid()}_{secrets.token_hex(3)}.h5"
        final = directory / name
        with replacing(final, clean=False) as tmp:
            write_episode_file(tmp, episode, self.compression)
        self._append_index([_entry_for(self._rel(final), episode)])
        return final

    def clean_temp_files(self) -> list[Path]:
        """Delete temp files left by writers that no longer run; return what was deleted.

        Temp names carry the writer's pid, so a temp file of a live concurrent writer is kept.
        """
        return clean_partials(self.root, recursive=True)

    # ---------------------------------------------------------------- reading

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def tasks(self) -> list[str]:
        """The tasks this store holds episodes of (its task directories), in global-id order."""
        if not self.root.is_dir():
            return []
        found = [
            d.name
            for d in self.root.iterdir()
            if d.is_dir() and any((d / k).is_dir() for k in EPISODE_KINDS)
        ]
        return sorted(found, key=_task_order)

    def _files(self, task: str | None = None, kind: str | None = None) -> list[Path]:
        if task is not None:
            get_task(task)
        if kind is not None and kind not in EPISODE_KINDS:
            raise ConfigError(
                f"unknown episode kind {kind!r}; valid kinds are {list(EPISODE_KINDS)}"
            )
        tasks = [task] if task else self.tasks()
        kinds = [kind] if kind else list(EPISODE_KINDS)
        files: list[Path] = []
        for t in tasks:
            for k in kinds:
                files.extend(sorted((self.root / t / k).glob(EPISODE_GLOB)))
        return files

    def _read_index_file(self) -> dict[str, IndexEntry]:
        path = self.root / INDEX
        entries: dict[str, IndexEntry] = {}
        if not path.exists():
            return entries
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    e = IndexEntry(**json.loads(line))
                except (ValueError, TypeError):
                    continue  # a line cut by a crash; its file is re-indexed from disk below
                entries[e.path] = e  # later lines win: duplicates are harmless
        return entries

    def index(self, task: str | None = None, kind: str | None = None) -> list[IndexEntry]:
        """What the store holds, from the index, without opening episode files.

        The directory listing is the truth: files the index lacks (a crash between rename and
        index append, or a deleted index) are opened once and appended to the index; lines whose
        file is gone are left out. Corrupt files are reported and left out.
        """
        entries = self._read_index_file()
        out = []
        missing = []
        for path in self._files(task, kind):
            rel = self._rel(path)
            if rel in entries:
                out.append(entries[rel])
            else:
                missing.append(path)
        repaired = []
        for path in missing:
            try:
                ep = read_episode_file(path)
            except CorruptEpisodeError as exc:
                self._report(path, exc)
                continue
            entry = _entry_for(self._rel(path), ep)
            repaired.append(entry)
            out.append(entry)
        if repaired and self.mode == "a":
            self._append_index(repaired)
        out.sort(key=lambda e: (_task_order(e.task), EPISODE_KINDS.index(e.kind), e.path))
        return out

    def rebuild_index(self) -> int:
        """Rewrite the index from the episode files (opens every file); return the entry count."""
        if self.mode != "a":
            raise StoreError(
                f"store {self.root} was opened read-only (mode='r'); cannot rebuild its index"
            )
        entries = []
        for path in self._files():
            try:
                entries.append(_entry_for(self._rel(path), read_episode_file(path)))
            except CorruptEpisodeError as exc:
                self._report(path, exc)
        with self._locked():
            durable_write_text(self.root / INDEX, "".join(e.to_json() + "\n" for e in entries))
        return len(entries)

    def count(self, task: str | None = None, kind: str | None = None) -> int:
        """Number of readable episodes (from the index)."""
        return len(self.index(task, kind))

    def n_transitions(self, task: str | None = None, kind: str | None = None) -> int:
        """Total number of steps (from the index)."""
        return sum(e.length for e in self.index(task, kind))

    def _report(self, path: Path, exc: Exception) -> None:
        if path not in self.skipped:
            self.skipped.append(path)
            warnings.warn(f"skipping corrupt episode file: {exc}", stacklevel=3)

    def load(self, path: str | os.PathLike[str]) -> Episode:
        """Load one episode file (absolute, or relative to the root); raises on corruption."""
        p = Path(path)
        return read_episode_file(p if p.is_absolute() else self.root / p)

    def holds(self, episode: Episode) -> bool:
        """Whether the store holds an episode with ``episode``'s fingerprint.

        Compared with the ``metadata["fingerprint"]`` each file records (importers write it:
        :meth:`~daft_env.episode.Episode.fingerprint`); episodes without one never match.
        """
        if self._fingerprints is None:
            self._fingerprints = {
                self.metadata(e.path).get("fingerprint") for e in self.index(kind=episode.kind)
            }
        return episode.metadata.get("fingerprint", episode.fingerprint()) in self._fingerprints

    def metadata(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """One episode file's metadata, read without its arrays (raises on an unreadable file)."""
        p = Path(path)
        p = p if p.is_absolute() else self.root / p
        try:
            with h5py.File(p, "r") as f:
                return json.loads(f.attrs.get("metadata", "{}"))
        except (OSError, ValueError) as exc:
            raise CorruptEpisodeError(f"{p}: cannot read its metadata ({exc})") from exc

    def episodes(self, task: str | None = None, kind: str | None = None) -> Iterator[Episode]:
        """Yield every readable episode, oldest first per task and kind; corrupt files are skipped."""
        for entry in self.index(task, kind):
            path = self.root / entry.path
            try:
                ep = read_episode_file(path)
            except CorruptEpisodeError as exc:
                self._report(path, exc)
                continue
            except FileNotFoundError:
                continue  # deleted since listing
            yield ep

    def transitions(self, task: str | None = None, kind: str | None = None) -> Iterator[Transition]:
        """Yield every step of every readable episode as a learner :class:`Transition`."""
        for ep in self.episodes(task, kind):
            yield from episode_transitions(ep)

    def verify(self) -> list[Path]:
        """Fully read every episode file; return (and report) the corrupt ones by path."""
        bad = []
        for path in self._files():
            try:
                read_episode_file(path)
            except CorruptEpisodeError as exc:
                self._report(path, exc)
                bad.append(path)
        return bad

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        return f"EpisodeStore({str(self.root)!r}, mode={self.mode!r})"


def episode_transitions(ep: Episode) -> Iterator[Transition]:
    """Split one episode into T transitions (Algorithm 1, lines 22 and 25)."""
    T = len(ep)
    obs = dict(ep.observations)
    if ep.embeddings is not None:
        obs["embedding"] = np.asarray(ep.embeddings)
    for t in range(T):
        term = bool(ep.terminated[t])
        yield Transition(
            obs={k: v[t] for k, v in obs.items()},
            action=np.asarray(ep.actions[t]),
            reward=float(ep.rewards[t]),
            next_obs={k: v[t + 1] for k, v in obs.items()},
            terminated=term,
            truncated=(t == T - 1 and not term),
            intervened=bool(ep.intervened[t]),
            refinement_command=ep.refinement_commands[t]
            if ep.refinement_commands
            else NULL_COMMAND,
            task_id=int(ep.task_id),
        )


__all__ = [
    "EpisodeStore",
    "IndexEntry",
    "Transition",
    "count_takeovers",
    "episode_transitions",
    "read_episode_file",
    "validate_episode",
    "write_episode_file",
]
