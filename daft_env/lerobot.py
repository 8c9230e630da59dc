"""Episodes to and from LeRobotDataset v3 folders (the layout LeRobot documents), with pyarrow.

Layout written by :func:`export_lerobot` (``lerobot`` itself cannot be installed beside DAFT's
torch, so this follows the documented v3.0 schema)::

    out/
      meta/info.json                                  codebase_version "v3.0", fps, features, totals
      meta/stats.json                                 min/max/mean/std/count per feature
      meta/tasks.parquet                              task (pandas index) -> task_index
      meta/episodes/chunk-000/file-000.parquet        one row per episode: length, tasks, file
                                                      locators, dataset_{from,to}_index, video
                                                      from/to timestamps, daft/* extras
      data/chunk-000/file-000.parquet                 one row per frame, many episodes per file
      videos/observation.images.<camera>/chunk-000/file-000.mp4

Frames: a DAFT episode of T steps has T+1 observations and T actions; LeRobot pairs one
observation with the action taken there, so T frames are written and the final observation is
not. :func:`read_lerobot` gives the final observation as a copy of the last frame's (it is only
read as the next state of the last transition: masked when that transition terminated).

Features: ``observation.images.<key>`` (video, one MP4 per camera per file, AV1 as LeRobot writes
it, through :mod:`daft_env.videoio`, with a key frame at each episode's first frame so Rerun's
LeRobot reader cuts episodes out without re-encoding; lossy, so frames come back close, not
equal: mean absolute error about 2 of 255), ``observation.state`` (the ``gripper`` proprioception, as in the paper),
``observation.environment_state`` (privileged sim ``state``), ``observation.<key>`` for any other
observation, ``action``, and the talk-and-tweak extras ``policy_action``, ``intended_action`` (the operator's
clean label on intervened steps), ``intervened``,
``refinement_command`` (string), ``next.reward`` and ``next.done``. Episode-level DAFT fields (task
name, kind, success, metadata) are ``daft/*`` columns of the episodes table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from daft_env.durable import write_text
from daft_env.episode import NULL_COMMAND, Episode
from daft_env.errors import ConfigError, StoreError
from daft_env.tasks import INSTRUCTIONS, get_task
from daft_env.videoio import CODEC_NAME, PIX_FMT, VideoWriter, read_video

CODEBASE_VERSION = "v3.0"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
EPISODES_PATH = "meta/episodes/" + CHUNK_FILE + ".parquet"
TASKS_PATH = "meta/tasks.parquet"
CHUNKS_SIZE = 1000
IMAGE_PREFIX = "observation.images."
ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
#: DAFT observation key <-> LeRobot feature, where LeRobot has a conventional name
RENAMES = {"gripper": "observation.state", "state": "observation.environment_state"}
#: LeRobot's default per-frame features (timestamp and indices)
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
#: the step fields DAFT adds as extra features
EXTRA_FEATURES: dict[str, dict[str, Any]] = {
    "policy_action": {"dtype": "float32", "shape": [7], "names": ACTION_NAMES},
    "intended_action": {"dtype": "float32", "shape": [7], "names": ACTION_NAMES},
    "intervened": {"dtype": "bool", "shape": [1], "names": None},
    "refinement_command": {"dtype": "string", "shape": [1], "names": None},
    "next.reward": {"dtype": "float32", "shape": [1], "names": None},
    "next.done": {"dtype": "bool", "shape": [1], "names": None},
}


def feature_name(key: str, arr: np.ndarray) -> str:
    """The LeRobot feature of a DAFT observation key (``wrist_rgb`` -> ``observation.images.wrist_rgb``)."""
    if _is_video(arr):
        return IMAGE_PREFIX + key
    return RENAMES.get(key, f"observation.{key}")


def observation_key(feature: str) -> str:
    """The DAFT observation key of a LeRobot feature (the inverse of :func:`feature_name`)."""
    for key, name in RENAMES.items():
        if feature == name:
            return key
    if feature.startswith(IMAGE_PREFIX):
        return feature[len(IMAGE_PREFIX) :]
    return feature[len("observation.") :]


def _is_video(arr: np.ndarray) -> bool:
    return arr.dtype == np.uint8 and arr.ndim == 4 and arr.shape[-1] == 3


def _pa_type(dtype: str, shape: list[int]) -> pa.DataType:
    base = {"float32": pa.float32(), "int64": pa.int64(), "bool": pa.bool_(), "string": pa.string()}
    if dtype not in base:
        raise ConfigError(f"feature dtype {dtype!r} has no parquet column type here")
    n = int(np.prod(shape))
    return base[dtype] if n == 1 else pa.list_(base[dtype], n)


def _column(values: np.ndarray, dtype: str, shape: list[int]) -> pa.Array:
    typ = _pa_type(dtype, shape)
    if dtype == "string":
        return pa.array([str(v) for v in values], type=typ)
    flat = np.asarray(values).reshape(len(values), -1)
    if flat.shape[1] == 1 and not pa.types.is_fixed_size_list(typ):
        return pa.array(flat[:, 0], type=typ)
    return pa.FixedSizeListArray.from_arrays(
        pa.array(flat.reshape(-1), type=typ.value_type), flat.shape[1]
    )


def _to_numpy(col: pa.ChunkedArray, dtype: str) -> np.ndarray:
    if dtype == "string":
        return np.asarray(col.to_pylist(), dtype=object)
    if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type):
        return np.asarray(col.to_pylist(), dtype=np.dtype(dtype))
    return col.to_numpy(zero_copy_only=False).astype(np.dtype(dtype))


def _numeric_feature(arr: np.ndarray) -> dict[str, Any]:
    shape = list(arr.shape[1:]) or [1]
    dtype = "bool" if arr.dtype == bool else ("int64" if arr.dtype.kind in "iu" else "float32")
    names = None if shape == [1] else [f"{i}" for i in range(int(np.prod(shape)))]
    return {"dtype": dtype, "shape": shape, "names": names}


def _video_feature(arr: np.ndarray, fps: int) -> dict[str, Any]:
    h, w, c = arr.shape[1:]
    return {
        "dtype": "video",
        "shape": [int(h), int(w), int(c)],
        "names": ["height", "width", "channels"],
        "info": {
            "video.height": int(h),
            "video.width": int(w),
            "video.codec": CODEC_NAME,
            "video.pix_fmt": PIX_FMT,
            "video.is_depth_map": False,
            "video.fps": int(fps),
            "video.channels": int(c),
            "has_audio": False,
        },
    }


def _write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=4) + "\n")


def _write_tasks(path: Path, tasks: list[str]) -> None:
    """``tasks.parquet`` as pandas writes a DataFrame indexed by ``task`` (what LeRobot reads)."""
    table = pa.table(
        {
            "task_index": pa.array(range(len(tasks)), pa.int64()),
            "task": pa.array(tasks, pa.string()),
        }
    )
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": "task",
                "field_name": "task",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    table = table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _stats(values: np.ndarray, image: bool) -> dict[str, list]:
    x = np.asarray(values, np.float64)
    if image:  # LeRobot's image stats: per channel, (C, 1, 1), pixels scaled to [0, 1]
        x = x.reshape(-1, x.shape[-1]) / 255.0
        stat = {k: f(x, axis=0).reshape(-1, 1, 1).tolist() for k, f in _STAT_FNS.items()}
    else:
        x = x.reshape(len(x), -1)
        stat = {k: f(x, axis=0).tolist() for k, f in _STAT_FNS.items()}
    stat["count"] = [int(len(values))]
    return stat


_STAT_FNS = {"min": np.min, "max": np.max, "mean": np.mean, "std": np.std}


class _VideoFiles:
    """One open MP4 per camera for the current (chunk, file); frames appended episode by episode.

    Each episode starts on a key frame, so a reader can seek to it (and Rerun's LeRobot reader
    can cut its samples out of the shared file without re-encoding).
    """

    def __init__(self, root: Path, fps: int) -> None:
        self.root, self.fps = root, fps
        self.writers: dict[str, VideoWriter] = {}

    def append(
        self, feature: str, frames: np.ndarray, chunk: int, file: int
    ) -> tuple[float, float]:
        if feature not in self.writers:
            path = self.root / VIDEO_PATH.format(
                video_key=feature, chunk_index=chunk, file_index=file
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            h, w = frames.shape[1:3]
            self.writers[feature] = VideoWriter(path, w, h, self.fps)
        writer = self.writers[feature]
        start = writer.frames
        for i, frame in enumerate(frames):
            writer.write(frame, key=i == 0)
        return start / self.fps, writer.frames / self.fps

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers = {}


def export_lerobot(
    episodes: Iterable[Episode],
    out: str | os.PathLike[str],
    fps: int = 10,
    robot_type: str = "daft_bolt_arm",
    episodes_per_file: int = 100,
) -> dict[str, Any]:
    """Write episodes as a LeRobotDataset v3 folder at ``out``; return its ``info.json`` dict.

    Args:
        episodes: the episodes (e.g. ``EpisodeStore.episodes()``); all must share observation keys
            and shapes.
        out: a new or empty directory.
        fps: frames per second (DAFT controls at 10 Hz).
        robot_type: ``info.json``'s robot type.
        episodes_per_file: episodes per data parquet file and per MP4 (v3 packs many per file).

    Raises:
        StoreError: ``out`` is a non-empty directory or a file, there are no episodes, or two
            episodes disagree in observation keys or shapes.
        ConfigError: ``fps`` or ``episodes_per_file`` is below 1.
    """
    if fps < 1 or episodes_per_file < 1:
        raise ConfigError(f"fps and episodes_per_file must be >= 1; got {fps}, {episodes_per_file}")
    root = Path(out).expanduser()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise StoreError(f"{root} exists and is not an empty directory; export into a new one")
    features: dict[str, dict[str, Any]] | None = None
    tasks: list[str] = []
    ep_rows: list[dict[str, Any]] = []
    frame_tables: list[pa.Table] = []
    stats_values: dict[str, list[np.ndarray]] = {}
    videos = _VideoFiles(root, fps)
    index = 0
    file_key = (0, 0)

    def flush_data(chunk: int, file: int) -> None:
        if frame_tables:
            path = root / DATA_PATH.format(chunk_index=chunk, file_index=file)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.concat_tables(frame_tables), path)
            frame_tables.clear()
        videos.close()

    for ep_idx, ep in enumerate(episodes):
        obs = {k: np.asarray(v)[: len(ep)] for k, v in ep.observations.items()}
        ep_features = {feature_name(k, a): a for k, a in obs.items()}
        if features is None:
            features = {
                name: _video_feature(a, fps) if _is_video(a) else _numeric_feature(a)
                for name, a in ep_features.items()
            }
            features["action"] = {"dtype": "float32", "shape": [7], "names": ACTION_NAMES}
            features.update(EXTRA_FEATURES)
            features.update(DEFAULT_FEATURES)
        else:
            for name, a in ep_features.items():
                if name not in features or list(features[name]["shape"]) != (
                    list(a.shape[1:]) or [1]
                ):
                    raise StoreError(
                        f"episode {ep_idx} ({ep.task}) has observation {observation_key(name)!r} "
                        f"of shape {a.shape[1:]}, unlike the first episode; export them apart"
                    )
        chunk, file = divmod(ep_idx // episodes_per_file, CHUNKS_SIZE)
        if (chunk, file) != file_key:
            flush_data(*file_key)
            file_key = (chunk, file)
        if ep.instruction not in tasks:
            tasks.append(ep.instruction)
        t_len = len(ep)
        frame_index = np.arange(t_len)
        step = {
            "action": np.asarray(ep.actions, np.float32),
            "policy_action": np.asarray(ep.policy_actions, np.float32),
            "intended_action": np.asarray(ep.labels, np.float32),
            "intervened": np.asarray(ep.intervened, bool),
            "refinement_command": np.asarray(ep.refinement_commands, dtype=object),
            "next.reward": np.asarray(ep.rewards, np.float32),
            "next.done": np.asarray(ep.terminated, bool),
            "timestamp": (frame_index / fps).astype(np.float32),
            "frame_index": frame_index,
            "episode_index": np.full(t_len, ep_idx),
            "index": index + frame_index,
            "task_index": np.full(t_len, tasks.index(ep.instruction)),
        }
        row: dict[str, Any] = {
            "episode_index": ep_idx,
            "tasks": [ep.instruction],
            "length": t_len,
            "meta/episodes/chunk_index": 0,
            "meta/episodes/file_index": 0,
            "data/chunk_index": chunk,
            "data/file_index": file,
            "dataset_from_index": index,
            "dataset_to_index": index + t_len,
        }
        columns = {}
        for name, a in ep_features.items():
            if _is_video(a):
                start, end = videos.append(name, a, chunk, file)
                row[f"videos/{name}/chunk_index"] = chunk
                row[f"videos/{name}/file_index"] = file
                row[f"videos/{name}/from_timestamp"] = start
                row[f"videos/{name}/to_timestamp"] = end
            else:
                step[name] = a
            stats_values.setdefault(name, []).append(
                a[:: max(1, t_len // 8)] if _is_video(a) else a
            )
        for name, values in step.items():
            f = features[name]
            columns[name] = _column(values, f["dtype"], f["shape"])
            if f["dtype"] != "string":
                stats_values.setdefault(name, []).append(np.asarray(values))
        frame_tables.append(pa.table(columns))
        row.update(
            {
                "daft/task": ep.task,
                "daft/kind": ep.kind,
                "daft/success": bool(ep.success),
                "daft/metadata": json.dumps(ep.metadata, sort_keys=True),
            }
        )
        ep_rows.append(row)
        index += t_len
    if features is None:
        raise StoreError("no episodes to export; record some first (daft collect)")
    flush_data(*file_key)
    episodes_table = pa.Table.from_pylist(ep_rows)
    pq.write_table(
        episodes_table, _mkparent(root / EPISODES_PATH.format(chunk_index=0, file_index=0))
    )
    _write_tasks(root / TASKS_PATH, tasks)
    stats = {
        name: _stats(np.concatenate(v), features[name]["dtype"] == "video")
        for name, v in stats_values.items()
    }
    _write_json(root / "meta" / "stats.json", stats)
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": len(ep_rows),
        "total_frames": index,
        "total_tasks": len(tasks),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "fps": int(fps),
        "splits": {"train": f"0:{len(ep_rows)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if any(f["dtype"] == "video" for f in features.values()) else None,
        "features": features,
    }
    _write_json(root / "meta" / "info.json", info)
    return info


def _mkparent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _read_video(path: Path) -> np.ndarray:
    if not path.is_file():
        raise StoreError(f"{path}: video file missing")
    frames = read_video(path)
    if not len(frames):
        raise StoreError(f"{path}: no readable video frames")
    return frames


def read_info(root: str | os.PathLike[str]) -> dict[str, Any]:
    """``meta/info.json`` of a LeRobotDataset v3 folder.

    Raises:
        StoreError: no ``info.json``, or another codebase version (v2.x needs LeRobot's converter).
    """
    path = Path(root) / "meta" / "info.json"
    if not path.exists():
        raise StoreError(f"{Path(root)} is not a LeRobotDataset folder: {path} is missing")
    info = json.loads(path.read_text(encoding="utf-8"))
    if info.get("codebase_version") != CODEBASE_VERSION:
        raise StoreError(
            f"{path}: codebase_version {info.get('codebase_version')!r}; DAFT reads "
            f"{CODEBASE_VERSION!r} (convert v2.1 datasets with LeRobot's convert_dataset_v21_to_v30)"
        )
    return info


def _task_of(row: Mapping[str, Any], instruction: str, task: str | None) -> str:
    if task is not None:
        return get_task(task).name
    if row.get("daft/task"):
        return get_task(row["daft/task"]).name
    for name, text in INSTRUCTIONS.items():
        if text == instruction:
            return name
    raise ConfigError(
        f"LeRobot task {instruction!r} is none of DAFT's instructions {list(INSTRUCTIONS.values())}; "
        "name the DAFT task it is with task=... (daft import --task NAME)"
    )


def read_lerobot(
    root: str | os.PathLike[str], task: str | None = None, kind: str = "demos"
) -> Iterator[Episode]:
    """Yield the episodes of a LeRobotDataset v3 folder as DAFT :class:`Episode` records.

    Args:
        root: the dataset folder (``meta/info.json`` inside).
        task: the DAFT task of every episode; default: the ``daft/task`` column, else the task
            whose instruction equals the episode's LeRobot task string.
        kind: the kind of every episode (``"demos"``: the issue's demonstrations).

    A dataset written elsewhere may lack DAFT's extras: then ``policy_action`` = ``action``, no step
    is intervened, every command is ``[null]``, ``next.reward`` is 1 on the last frame, which
    terminates it, and the episode counts as a success (a demonstration).

    Raises:
        StoreError: not a v3 folder, or frame and video counts disagree.
        ConfigError: a task cannot be told (see ``task``).
    """
    root = Path(root)
    info = read_info(root)
    features: dict[str, dict[str, Any]] = info["features"]
    ep_files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    tables: dict[tuple[int, int], pa.Table] = {}
    videos: dict[tuple[str, int, int], np.ndarray] = {}
    for ep_file in ep_files:
        for row in pq.read_table(ep_file).to_pylist():
            key = (int(row["data/chunk_index"]), int(row["data/file_index"]))
            if key not in tables:
                tables[key] = pq.read_table(
                    root / info["data_path"].format(chunk_index=key[0], file_index=key[1])
                )
            data = tables[key]
            sel = np.flatnonzero(data.column("episode_index").to_numpy() == row["episode_index"])
            frames = data.take(pa.array(sel))
            t_len = len(sel)
            if t_len == 0:
                raise StoreError(f"{root}: episode {row['episode_index']} has no frames")
            col = {
                n: _to_numpy(frames.column(n), f["dtype"])
                for n, f in features.items()
                if f["dtype"] != "video" and n in frames.column_names
            }
            obs: dict[str, np.ndarray] = {}
            for name, f in features.items():
                if not name.startswith("observation."):
                    continue
                if f["dtype"] == "video":
                    vkey = (
                        name,
                        row[f"videos/{name}/chunk_index"],
                        row[f"videos/{name}/file_index"],
                    )
                    if vkey not in videos:
                        videos[vkey] = _read_video(
                            root
                            / info["video_path"].format(
                                video_key=name, chunk_index=vkey[1], file_index=vkey[2]
                            )
                        )
                    start = int(round(row[f"videos/{name}/from_timestamp"] * info["fps"]))
                    values = videos[vkey][start : start + t_len]
                    if len(values) != t_len:
                        raise StoreError(
                            f"{root}: video {name} has {len(values)} frames for episode "
                            f"{row['episode_index']}, which has {t_len}"
                        )
                else:
                    values = (
                        col[name].reshape(t_len, *f["shape"]) if f["shape"] != [1] else col[name]
                    )
                # the final observation is not a LeRobot frame: repeat the last one
                obs[observation_key(name)] = np.concatenate([values, values[-1:]])
            instruction = row["tasks"][0] if row.get("tasks") else ""
            name = _task_of(row, instruction, task)
            actions = col["action"].astype(np.float32).reshape(t_len, -1)
            rewards = col.get("next.reward")
            done = col.get("next.done")
            if rewards is None or done is None:
                rewards = np.zeros(t_len, np.float32)
                rewards[-1] = 1.0
                done = np.zeros(t_len, bool)
                done[-1] = True
            commands = col.get("refinement_command")
            metadata = json.loads(row.get("daft/metadata") or "{}")
            metadata.update(
                {"source": "lerobot", "lerobot_episode_index": int(row["episode_index"])}
            )
            yield Episode(
                task=name,
                task_id=get_task(name).task_id,
                instruction=instruction or get_task(name).instruction,
                kind=kind,
                observations=obs,
                actions=actions,
                policy_actions=col.get("policy_action", actions)
                .astype(np.float32)
                .reshape(t_len, -1),
                intervened=col.get("intervened", np.zeros(t_len, bool)).astype(bool).reshape(-1),
                intended_actions=None
                if col.get("intended_action") is None
                else col["intended_action"].astype(np.float32).reshape(t_len, -1),
                rewards=np.asarray(rewards, np.float32).reshape(-1),
                terminated=np.asarray(done, bool).reshape(-1),
                refinement_commands=[str(c) for c in commands]
                if commands is not None
                else [NULL_COMMAND] * t_len,
                success=bool(row.get("daft/success", True)),
                metadata=metadata,
            )


def import_lerobot(
    root: str | os.PathLike[str], store: Any, task: str | None = None, kind: str = "demos"
) -> int:
    """Add the episodes of a LeRobotDataset v3 folder to ``store``; return how many were added.

    An episode the store already holds (:meth:`~daft_env.store.EpisodeStore.holds`) is skipped,
    so importing the same dataset twice adds it once.
    """
    n = 0
    for episode in read_lerobot(root, task=task, kind=kind):
        episode.metadata["fingerprint"] = episode.fingerprint()
        if not store.holds(episode):
            store.add(episode)
            n += 1
    return n


__all__ = [
    "CODEBASE_VERSION",
    "export_lerobot",
    "feature_name",
    "import_lerobot",
    "observation_key",
    "read_info",
    "read_lerobot",
]
