"""Per-task critic ensembles Q_psi_i(s, a) (Section IV-C), Cal-QL warm-up and Bellman online.

Each task has its own critic (own backbone, own ensemble), trained only on that task's data
(Algorithm 1, lines 5 and 13; the paper's Eq. 4 is the actor's Q term, :mod:`daft_agent.weights`);
the target critics are a Polyak-averaged copy. All tasks' ensembles live in one
:class:`TaskCritics` module and run as one batched ensemble of T x M members, each row routed to
its own task's members (:class:`TaskRouting`): a learner update makes one critic call where T
separate critics made T (measured in ``benchmarks/learner_throughput.py``: a quarter fewer torch
ops per online update, half per Cal-QL warm-up update).
"""

from __future__ import annotations

import math
from collections.abc import KeysView, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from daft_agent.errors import AgentConfigError


def monte_carlo_returns(
    rewards: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray | None = None,
    gamma: float = 0.99,
    truncation_value: float = 0.0,
) -> np.ndarray:
    """Discounted return-to-go G_t = r_t + gamma G_{t+1}, restarting at every episode end.

    The arrays may hold several episodes back to back; an episode ends at a step whose
    ``terminated`` or ``truncated`` flag is set (and the last step always ends one).

    * At a terminal step G_t = r_t: nothing follows a terminal.
    * At a truncated step (a time limit, not a terminal) the future is unknown; G_t = r_t + gamma *
      ``truncation_value``. With non-negative rewards (DAFT's sparse 0/1) the default 0 makes G a
      valid *lower bound* of the true value, which is exactly what Cal-QL needs.

    Known pitfall (a bug of this kind sits in another implementation): computing the return with
    a single running sum that is reset only on ``terminated`` lets a truncated episode's tail
    inherit the return of the *next* episode in the array, so failed episodes get credit for a
    later success and the Cal-QL "lower bound" becomes an over-estimate. Resetting on
    ``terminated or truncated`` (and never bootstrapping across the boundary) avoids it. The
    opposite mistake, treating truncation as a terminal in the TD target, is avoided in
    the learner's TD target (:mod:`daft_agent.update`), which masks only true terminals.

    Args:
        rewards: (T,) rewards.
        terminated: (T,) bool, True where an episode ended in a terminal state.
        truncated: (T,) bool, True where an episode was cut by a time limit (optional).
        gamma: discount factor in (0, 1].
        truncation_value: value assumed after a truncated step.

    Returns:
        (T,) float32 returns.
    """
    rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)
    n = rewards.shape[0]
    term = np.asarray(terminated, dtype=bool).reshape(-1)
    trunc = (
        np.zeros(n, bool) if truncated is None else np.asarray(truncated, dtype=bool).reshape(-1)
    )
    if term.shape[0] != n or trunc.shape[0] != n:
        raise AgentConfigError("rewards, terminated and truncated must have the same length")
    if not 0.0 < gamma <= 1.0:
        raise AgentConfigError(f"gamma must be in (0, 1], got {gamma}")
    out = np.zeros(n, dtype=np.float64)
    running = 0.0
    for t in range(n - 1, -1, -1):
        if term[t]:
            running = rewards[t]
        elif trunc[t] or t == n - 1:
            running = rewards[t] + gamma * truncation_value
        else:
            running = rewards[t] + gamma * running
        out[t] = running
    return out.astype(np.float32)


def calql_lower_bound(q_policy: torch.Tensor, mc_returns: torch.Tensor) -> torch.Tensor:
    """Cal-QL calibration: max(Q(s, a_pi), V_mu(s)) with V_mu the Monte-Carlo return (ref. [25]).

    The CQL regulariser pushes down Q of policy actions; bounding them from below by the data's
    return stops it from pushing them below the behaviour policy's value, so the critic stays
    calibrated for online fine-tuning. ``mc_returns`` broadcasts over the trailing sample dims.
    """
    mc = mc_returns.reshape(mc_returns.shape + (1,) * (q_policy.dim() - mc_returns.dim() - 1))
    # Leading ensemble dim of q_policy (E, B, ...) broadcasts against (B, ...).
    return torch.maximum(q_policy, mc.to(q_policy))


class EnsembleLinear(nn.Module):
    """E independent linear layers applied in one batched matmul: (E, B, in) -> (E, B, out)."""

    def __init__(self, ensemble: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(ensemble, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, detach_params: bool = False) -> torch.Tensor:
        """Map (E, B, in) to (E, B, out); ``detach_params`` uses the weights as constants."""
        if detach_params:
            return torch.baddbmm(self.bias.detach(), x, self.weight.detach())
        return torch.baddbmm(self.bias, x, self.weight)


class TaskRouting:
    """Where each row of a batch sits in the (task, slot) layout of one :class:`TaskCritics` call.

    Rows of task t fill the slots ``t * S ... t * S + count_t - 1`` of a (T, S) grid, S being the
    largest task's row count; the spare slots repeat a row and their outputs are never read. So
    every task's members see exactly its own rows, in one batched matmul for all tasks, and the
    routing is a pair of gathers (no ``nonzero``, no ``index_put``).

    Args:
        task_index: (N,) task id of each row, in ``[0, n_tasks)``.
        n_tasks: T.

    Raises:
        AgentConfigError: an empty batch or a task id outside ``[0, n_tasks)``.
    """

    def __init__(self, task_index: torch.Tensor | np.ndarray, n_tasks: int) -> None:
        device = task_index.device if isinstance(task_index, torch.Tensor) else None
        # Built on the host: a handful of tiny numpy calls cost less than the same torch ops, and
        # S (the slot count) must reach the host anyway to shape the call.
        ti = np.asarray(
            task_index.detach().cpu() if isinstance(task_index, torch.Tensor) else task_index
        ).reshape(-1)
        n = ti.shape[0]
        if n == 0:
            raise AgentConfigError("a critic batch needs at least one row")
        ti = ti.astype(np.int64)
        lo, hi = int(ti.min()), int(ti.max())
        if lo < 0 or hi >= n_tasks:
            raise AgentConfigError(
                f"task index {lo if lo < 0 else hi} is outside [0, {n_tasks}): the batch holds a "
                f"task the critics were not built for (they have {n_tasks} tasks)"
            )
        counts = np.bincount(ti, minlength=n_tasks)
        slots = int(counts.max())
        order = np.argsort(ti, kind="stable")
        starts = np.cumsum(counts) - counts
        scatter = np.empty(n, np.int64)
        scatter[order] = ti[order] * slots + np.arange(n) - starts[ti[order]]
        within = np.minimum(np.arange(slots)[None, :], np.maximum(counts - 1, 0)[:, None])
        gather = order[np.minimum(starts[:, None] + within, n - 1).reshape(-1)]
        self.n_tasks = n_tasks
        self.slots = slots
        self.task_index = torch.from_numpy(ti).to(device)
        self.counts = torch.from_numpy(counts).to(device)
        # scatter[r]: the slot of row r; gather[s]: the row that feeds slot s.
        self.scatter = torch.from_numpy(scatter).to(device)
        self.gather = torch.from_numpy(gather).to(device)

    def task_mean(self, per_row: torch.Tensor) -> torch.Tensor:
        """(T,) mean of a per-row quantity over each task's rows (0 for a task without rows)."""
        sums = torch.zeros(self.n_tasks, dtype=per_row.dtype, device=per_row.device)
        sums = sums.index_add(0, self.task_index, per_row)
        return sums / self.counts.clamp_min(1).to(per_row)


class _TaskLayerNorm(nn.Module):
    """LayerNorm then ReLU, with affine parameters per task shared by that task's M members.

    This is what an ``nn.LayerNorm`` inside one task's ensemble does (its affine broadcasts over
    the members), kept per task so that task i's LayerNorm only ever sees task i's rows. One
    fused ``layer_norm`` per task (affine included) beats a shared normalisation followed by a
    per-task affine: that costs two more passes over the activations forward and backward, and
    with Cal-QL's 13 actions per state the activations are megabytes.
    """

    def __init__(self, n_tasks: int, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_tasks, width))
        self.bias = nn.Parameter(torch.zeros(n_tasks, width))

    def forward(self, x: torch.Tensor, detach_params: bool = False) -> torch.Tensor:
        """ReLU(LayerNorm_t(x[t])) for each task t: (T, M, R, H) -> (T, M, R, H)."""
        w, b = (
            (self.weight.detach(), self.bias.detach())
            if detach_params
            else (self.weight, self.bias)
        )
        width = x.shape[-1:]
        # unbind, not x[t]: the backward of an indexed view zero-fills the whole tensor per task.
        y = torch.stack(
            [
                nn.functional.layer_norm(xt, width, wt, bt)
                for xt, wt, bt in zip(x.unbind(0), w.unbind(0), b.unbind(0), strict=True)
            ]
        )
        # In place: layer_norm's backward needs its input, not its output.
        return y.relu_()


class TaskCritics(nn.Module):
    """Every task's critic Q_psi_i (Algorithm 1, l. 5, 13) as one vectorised ensemble of T tasks x M members.

    Task i owns its backbone ``backbones[i]`` and the members ``i*M ... i*M + M - 1`` of every
    layer; a row of task i reaches only those (see :class:`TaskRouting`), so each task's critic is
    trained on its own task's rows alone, exactly as T separate critics would be, but one call
    evaluates every row's own-task ensemble: one backbone pass per task and one batched matmul per
    layer for all tasks. Each hidden layer is Linear - LayerNorm (affine per task) - ReLU.

    Args:
        tasks: task names, in task-id order.
        backbones: one backbone per task (the critic's own V(s, l_task), Eq. 3).
        action_dim: size of the action.
        hidden_sizes: widths of the hidden layers.
        n_critics: ensemble size M per task.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        backbones: Sequence[nn.Module],
        action_dim: int,
        hidden_sizes: Sequence[int],
        n_critics: int,
    ) -> None:
        super().__init__()
        if n_critics < 1:
            raise AgentConfigError(f"n_critics must be >= 1, got {n_critics}")
        if not hidden_sizes:
            raise AgentConfigError("the critics need at least one hidden layer width")
        if len(backbones) != len(tasks) or not tasks:
            raise AgentConfigError(
                f"need one critic backbone per task; got {len(backbones)} for tasks {list(tasks)}"
            )
        dims = {int(bb.features_dim) for bb in backbones}
        if len(dims) != 1:
            raise AgentConfigError(f"the critic backbones must share features_dim, got {dims}")
        self.tasks = tuple(tasks)
        self.n_tasks = len(self.tasks)
        self.n_critics = int(n_critics)
        self.backbones = nn.ModuleList(backbones)
        t, m = self.n_tasks, self.n_critics
        d = dims.pop() + action_dim
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        for h in hidden_sizes:
            self.linears.append(EnsembleLinear(t * m, d, h))
            self.norms.append(_TaskLayerNorm(t, h))
            d = h
        self.linears.append(EnsembleLinear(t * m, d, 1))

    def keys(self) -> KeysView[str]:
        """The task names, as the keys of the per-task critics."""
        return dict.fromkeys(self.tasks).keys()

    def routing(self, task_index: torch.Tensor) -> TaskRouting:
        """The :class:`TaskRouting` of a batch with these task ids."""
        return TaskRouting(task_index, self.n_tasks)

    def features(self, obs: Mapping[str, torch.Tensor], routing: TaskRouting) -> torch.Tensor:
        """(T, S, F): each task's backbone on the rows routed to it."""
        routed = {k: v.index_select(0, routing.gather) for k, v in obs.items()}
        s = routing.slots
        return torch.stack(
            [
                bb({k: v[i * s : (i + 1) * s] for k, v in routed.items()})
                for i, bb in enumerate(self.backbones)
            ]
        )

    def ensemble(
        self, h: torch.Tensor, actions: torch.Tensor, detach_params: bool = False
    ) -> torch.Tensor:
        """Q of every task's members on its routed rows: h (T, S, F), actions (T, S, n, A) -> (T, M, S, n).

        With ``detach_params`` the weights enter as constants: gradients reach the actions (and h)
        but no critic weight, without touching ``requires_grad`` (the actor losses need this).
        """
        t, s, n, a = actions.shape
        m, f = self.n_critics, h.shape[-1]
        # First layer on [h, a] as h W_h + a W_a: the state's part once per state, not once per
        # action (Cal-QL scores 13 actions per state), and no (rows x (F + A)) input is built.
        first = self.linears[0]
        w, bias = first.weight, first.bias
        if detach_params:
            w, bias = w.detach(), bias.detach()
        hm = h.unsqueeze(1).expand(t, m, s, f).reshape(t * m, s, f)
        am = actions.reshape(t, 1, s * n, a).expand(t, m, s * n, a).reshape(t * m, s * n, a)
        x = torch.baddbmm(bias, hm, w[:, :f]).unsqueeze(2) + torch.bmm(am, w[:, f:]).view(
            t * m, s, n, -1
        )
        x = x.view(t, m, s * n, -1)
        for i, norm in enumerate(self.norms):
            if i:
                x = self.linears[i](x.view(t * m, s * n, -1), detach_params).view(t, m, s * n, -1)
            x = norm(x, detach_params)
        return self.linears[-1](x.view(t * m, s * n, -1), detach_params).view(t, m, s, n)

    def forward(
        self,
        obs: Mapping[str, torch.Tensor],
        actions: torch.Tensor,
        routing: TaskRouting,
        detach_params: bool = False,
    ) -> torch.Tensor:
        """Q_psi_i(s, a) of each row's own task i for every member.

        Args:
            obs: a batch of N observations.
            actions: (N, A), or (N, n, A) for n actions per state (the backbone runs once per state).
            routing: the batch's :class:`TaskRouting`.
            detach_params: see :meth:`ensemble`; the backbone then runs without gradient (h does
                not depend on the actions, so no gradient is lost).

        Returns:
            (M, N) for (N, A) actions, (M, N, n) for (N, n, A).
        """
        single = actions.dim() == 2
        acts = actions.unsqueeze(1) if single else actions
        n = acts.shape[1]
        if detach_params:
            with torch.no_grad():
                h = self.features(obs, routing)
        else:
            h = self.features(obs, routing)
        routed = acts.index_select(0, routing.gather).view(self.n_tasks, routing.slots, n, -1)
        q = self.ensemble(h, routed, detach_params)
        q = q.transpose(0, 1).reshape(self.n_critics, self.n_tasks * routing.slots, n)
        q = q.index_select(1, routing.scatter)
        return q.squeeze(2) if single else q


def bellman_per_row(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared TD error summed over ensemble members, per row: ``q`` (E, B), ``target`` (B,) -> (B,)."""
    return ((q - target.unsqueeze(0)) ** 2).sum(0)


def calql_per_row(
    q_data: torch.Tensor,
    q_random: torch.Tensor,
    q_policy: torch.Tensor,
    q_next_policy: torch.Tensor,
    mc_returns: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Cal-QL's conservative term, summed over ensemble members, per row: (B,).

    temperature * logsumexp([Q(s, a_rand), max(Q(s, a_pi), G), max(Q(s, a'_pi), G)] / temperature)
    - Q(s, a_data), with G the Monte-Carlo return (:func:`calql_lower_bound`). The consistency
    policy has no tractable density, so the CQL(H) importance weights are dropped (as in ConRFT):
    uniform and policy samples enter the log-sum-exp with equal weight.

    Shapes: ``q_data`` (E, B); the others (E, B, n); ``mc_returns`` (B,).
    """
    cat = torch.cat(
        [
            q_random,
            calql_lower_bound(q_policy, mc_returns),
            calql_lower_bound(q_next_policy, mc_returns),
        ],
        dim=2,
    )
    lse = temperature * torch.logsumexp(cat / temperature, dim=2)
    return (lse - q_data).sum(0)
