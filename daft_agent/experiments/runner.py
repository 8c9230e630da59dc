"""The shared runner of the paper's experiments: one trial per (row, seed), a Ray Tune grid.

Every trial of a grid gets the same env (``env_id`` in ``obs_mode``, under the same simulated
operator at the same ``operator_rate``), a private copy of the same demonstration store
(collected once, :func:`prepare_demos`) and the same online budget, so rows differ only in the
learner (:mod:`daft_agent.baselines`). The grid is a Ray Tune experiment whose state lives under
``<output>/tune``: a killed sweep restored with ``resume=True`` runs only the trials that had not
finished, and a finished trial's ``trials/<row>-seed<k>.json`` is never recomputed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from daft_agent.baselines import BASELINES, COMMAND_ROWS, BaselineSettings
from daft_agent.errors import AgentConfigError, ExperimentError
from daft_agent.runs.config import CURVE, DEMOS, OPERATOR_RATE, PRESETS
from daft_env.durable import write_text

#: where a grid keeps its Ray Tune state, below the output folder
TUNE_DIR = "tune"
#: ``daft experiment table1 --tiny``: all rows, a few hundred steps, one seed, tiny networks (the suite runs it)
TINY = {
    "demos": 2,
    "online_steps": 150,
    "eval_trials": 1,
    "eval_every": 150,
    "curve_trials": 1,
    "settings": {
        "warmup_steps": 10,
        "batch_size": 16,
        "min_rollouts_per_task": 5,
        "hidden": (16, 16),
        "learning_starts": 20,
    },
}


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything every trial of one grid shares.

    Args:
        env_id: the training and evaluation env.
        obs_mode: its observation mode.
        demos: expert demonstrations per task in the shared store.
        online_steps: the online budget of every row.
        operator_rate: target intervention rate of the simulated operator (daft train's).
        eval_trials: final evaluation episodes per task.
        eval_every: online steps between learning-curve rows (0: no curve).
        curve_trials: episodes per task in each learning-curve row.
        settings: the learners' shared sizes.
    """

    env_id: str = PRESETS["state"]["env_id"]
    obs_mode: str = PRESETS["state"]["obs_mode"]
    demos: int = DEMOS
    online_steps: int = PRESETS["state"]["online_steps"]
    operator_rate: float = OPERATOR_RATE
    #: fewer than a run's final 50 and curve's 20: a grid trains rows x seeds runs
    eval_trials: int = 25
    eval_every: int = CURVE["eval_every"]
    curve_trials: int = 5
    settings: BaselineSettings = field(default_factory=BaselineSettings)

    def __post_init__(self) -> None:
        if self.demos < 1 or self.online_steps < 1 or self.eval_trials < 1:
            raise AgentConfigError("an experiment needs demos, online_steps and eval_trials >= 1")
        if self.eval_every < 0 or self.curve_trials < 1:
            raise AgentConfigError("eval_every must be >= 0 and curve_trials >= 1")

    @classmethod
    def of(cls, tiny: bool = False, **sizes: int | None) -> ExperimentConfig:
        """The defaults (:data:`TINY` with ``tiny``), with each size given (not None) over them."""
        base: dict[str, Any] = dict(TINY) if tiny else {}
        settings = BaselineSettings(**base.pop("settings", {}))
        base |= {k: v for k, v in sizes.items() if v is not None}
        return cls(settings=settings, **base)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the trial config and the results file)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExperimentConfig:
        """Inverse of :meth:`as_dict`."""
        s = dict(d["settings"])
        if s.get("hidden") is not None:
            s["hidden"] = tuple(s["hidden"])
        return cls(**{**d, "settings": BaselineSettings(**s)})


def tasks_of(env_id: str, obs_mode: str) -> list[str]:
    """The env's task names in ``task_id`` order (a single-task env's own task)."""
    from daft_agent.env_contract import env_tasks
    from daft_agent.runs.envs import make_env

    env = make_env(env_id, obs_mode=obs_mode)
    try:
        return env_tasks(env)
    finally:
        env.close()


def prepare_demos(root: Path, cfg: ExperimentConfig, seed: int = 0) -> Path:
    """The shared demonstration store at ``root/demos``, collected once (kept if complete)."""
    from daft_env.demos import collect_demos
    from daft_env.store import EpisodeStore

    path = root / "demos"
    store = EpisodeStore(path)
    tasks = tasks_of(cfg.env_id, cfg.obs_mode)
    missing = [t for t in tasks if store.count(task=t, kind="demos") < cfg.demos]
    if missing:
        shutil.rmtree(path)
        store = EpisodeStore(path)
        collect_demos(store, cfg.env_id, tasks, cfg.demos, cfg.obs_mode, seed=seed, progress=False)
    return path


def trial_path(root: Path, row: str, seed: int) -> Path:
    """Where trial (row, seed) writes its results."""
    return root / "trials" / f"{row}-seed{seed}.json"


def _intervention_counter() -> Any:
    """An SB3 callback counting online steps and intervened ones (every row, SAC ones too)."""
    from stable_baselines3.common.callbacks import BaseCallback

    class InterventionCounter(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.steps = self.intervened = 0

        def _on_step(self) -> bool:
            self.steps += 1
            self.intervened += int(bool(self.locals["infos"][0].get("intervened", False)))
            return True

    return InterventionCounter()


def run_trial(row: str, seed: int, cfg: ExperimentConfig, root: Path) -> dict[str, Any]:
    """Train row ``row`` with ``seed`` on the shared demos, evaluate it, write its JSON.

    The trial is a training run (:func:`~daft_agent.runs.train.train_run`) whose learner is the
    row's, on a private copy of the shared demos, evaluated in the nominal condition. Returns
    the run's results (``autonomous``, and ``with_commands`` for a row that takes commands,
    ``learning_curve``, ``intervention_share``, ``train_seconds``) with ``row``, ``label``,
    ``seed`` and ``online_steps``; the intervention share's ``overall`` counts every online step
    (a SAC row stores no episodes). A trial whose JSON exists returns it without training.
    """
    from daft_agent.baselines import make_baseline
    from daft_agent.runs.config import RunConfig
    from daft_agent.runs.report import write_results
    from daft_agent.runs.train import train_run

    out = trial_path(root, row, seed)
    if out.exists():  # finished before a resume: never recompute
        return json.loads(out.read_text())
    work = root / "work" / f"{row}-seed{seed}"
    if work.exists():
        shutil.rmtree(work)  # a trial killed midway starts over from the shared demos
    shutil.copytree(root / "demos", work / "store")
    run = RunConfig(
        env_id=cfg.env_id,
        obs_mode=cfg.obs_mode,
        name="run",
        output_dir=work,
        store=work / "store",
        online_steps=cfg.online_steps,
        demos=cfg.demos,
        eval_trials=cfg.eval_trials,
        eval_every=cfg.eval_every,
        curve_trials=cfg.curve_trials,
        operator_rate=cfg.operator_rate,
        seed=seed,
        progress=False,
        perturbed=False,
        with_commands=row in COMMAND_ROWS,
    )
    counter = _intervention_counter()
    results = train_run(
        run,
        make_model=lambda env, store, tasks: make_baseline(row, env, store, seed, cfg.settings),
        callbacks=[counter],
        echo=lambda line: None,
    )
    results["intervention_share"] |= {
        "overall": counter.intervened / max(1, counter.steps),
        "online_steps": counter.steps,
    }
    results = {"row": row, "label": BASELINES[row][1], "seed": seed} | results
    results["online_steps"] = cfg.online_steps
    write_results(out, results)  # durable: a kill mid-write never leaves a file resume trusts
    shutil.rmtree(work, ignore_errors=True)
    return results


def _trainable(config: dict[str, Any]) -> None:
    from ray import tune

    cfg = ExperimentConfig.from_dict(config["experiment"])
    res = run_trial(config["row"], config["seed"], cfg, Path(config["root"]))
    auto = [r["success_rate"] for r in res["autonomous"].values()]
    tune.report({"mean_success": sum(auto) / len(auto), "train_seconds": res["train_seconds"]})


def run_grid(
    rows: Sequence[str],
    seeds: Sequence[int],
    cfg: ExperimentConfig,
    root: Path,
    name: str,
    resume: bool = False,
    address: str | None = None,
    cpus_per_trial: float = 1.0,
) -> list[dict[str, Any]]:
    """Run rows x seeds as one Ray Tune experiment; returns every trial's results.

    Args:
        rows: baseline names (:data:`~daft_agent.baselines.BASELINES`).
        seeds: seeds of each row.
        cfg: what every trial shares.
        root: output folder (shared demos, trial JSONs, the Tune state under ``tune/``).
        name: the Tune experiment's name.
        resume: restore the experiment from ``root/tune/name`` and run only unfinished trials.
        address: a Ray cluster to join (None: the running Ray, or a local one).
        cpus_per_trial: CPUs reserved per trial, so trials never oversubscribe the cores.

    Raises:
        AgentConfigError: an unknown row, no rows or seeds, or ``resume`` with nothing to resume.
        ExperimentError: a trial failed (the finished ones are kept for ``resume``).
    """
    import ray

    if cpus_per_trial <= 0:
        raise AgentConfigError(f"--cpus-per-trial must be > 0; got {cpus_per_trial}")
    unknown = [r for r in rows if r not in BASELINES]
    if unknown or not rows or not seeds:
        raise AgentConfigError(
            f"need rows from {', '.join(BASELINES)} and at least one seed; got rows "
            f"{list(rows)}, seeds {list(seeds)}"
        )
    root = root.resolve()
    if resume and not (root / TUNE_DIR / name).exists():  # before collecting or starting Ray
        raise AgentConfigError(
            f"--resume: no experiment at {root / TUNE_DIR / name} to resume; run it once without "
            "--resume"
        )
    root.mkdir(parents=True, exist_ok=True)
    _check_same_grid(root / f"{name}.grid.json", list(rows), list(seeds), cfg, resume)
    prepare_demos(root, cfg)
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        _fit(rows, seeds, cfg, root, name, resume, cpus_per_trial)
    finally:
        if started:  # a Ray this call started ends with it; a caller's Ray keeps running
            ray.shutdown()
    return [
        json.loads(trial_path(root, r, s).read_text())
        for r in rows
        for s in seeds
        if trial_path(root, r, s).exists()
    ]


def _check_same_grid(
    path: Path, rows: list[str], seeds: list[int], cfg: ExperimentConfig, resume: bool
) -> None:
    """Record the grid on a first run; on a resume, refuse one that differs from it.

    A restored Tune experiment runs the grid it was created with, so changed flags would be
    silently ignored and the table would mix two budgets.
    """
    grid = json.loads(json.dumps({"rows": rows, "seeds": seeds, "experiment": cfg.as_dict()}))
    if resume and path.exists():
        before = json.loads(path.read_text())
        if before != grid:
            changed = [
                k
                for k in grid["experiment"]
                if grid["experiment"][k] != before["experiment"].get(k)
            ]
            changed += [k for k in ("rows", "seeds") if grid[k] != before[k]]
            raise AgentConfigError(
                f"--resume continues the sweep in {path.parent} as it was started; these differ "
                f"now: {', '.join(changed)}. Resume with the same flags, or use another --output-dir"
            )
    write_text(path, json.dumps(grid, indent=2) + "\n")


def _fit(
    rows: Sequence[str],
    seeds: Sequence[int],
    cfg: ExperimentConfig,
    root: Path,
    name: str,
    resume: bool,
    cpus_per_trial: float,
) -> None:
    """Create (or restore) the Tune experiment and run its unfinished trials."""
    from ray import tune

    trainable = tune.with_resources(_trainable, {"cpu": cpus_per_trial})
    storage = root / TUNE_DIR
    path = storage / name
    if resume and not tune.Tuner.can_restore(str(path)):
        raise AgentConfigError(
            f"--resume: no experiment at {path} to resume; run it once without --resume"
        )
    if resume:
        tuner = tune.Tuner.restore(str(path), trainable, resume_errored=True)
    else:
        space = {
            "row": tune.grid_search(list(rows)),
            "seed": tune.grid_search(list(seeds)),
            "experiment": cfg.as_dict(),
            "root": str(root),
        }
        tuner = tune.Tuner(
            trainable,
            param_space=space,
            run_config=tune.RunConfig(storage_path=str(storage), name=name, verbose=0),
        )
    grid = tuner.fit()
    failed = [r for r in grid if r.error is not None]
    if failed:
        raise ExperimentError(
            f"{len(failed)} trial(s) failed, first: {failed[0].error}; fix it and rerun with "
            "--resume (finished trials are kept)"
        )


__all__ = [
    "ExperimentConfig",
    "prepare_demos",
    "run_grid",
    "run_trial",
    "tasks_of",
    "trial_path",
]
