"""Table I's rows, each a configuration of shared parts (one module per row).

=============  ==========================================================================
row            what it is
=============  ==========================================================================
``daft``       DAFT (:mod:`.daft`)
``wo_dual``    DAFT without the refinement actor (:mod:`.wo_dual`)
``hg_dagger``  BC on demos + interventions, no critic (:mod:`.hg_dagger`)
``hil_conrft`` one consistency actor, one shared Cal-QL critic, eps = 1 (:mod:`.hil_conrft`)
``dsrl``       SAC in a frozen BC consistency policy's noise space (:mod:`.dsrl`)
``sac_demos``  SB3 SAC with half of every batch from demos + interventions (:mod:`.sac_demos`)
=============  ==========================================================================

Every builder is ``make(env, store, seed, settings) -> model``; the model has SB3's
``learn(total_timesteps, callback=...)`` and ``predict(obs, deterministic=...)``.
"""

from __future__ import annotations

import importlib
from typing import Any

from daft_agent.baselines.common import BaselineSettings
from daft_agent.errors import AgentConfigError

#: row name -> (module, label in Table I)
BASELINES: dict[str, tuple[str, str]] = {
    "daft": ("daft_agent.baselines.daft", "DAFT"),
    "wo_dual": ("daft_agent.baselines.wo_dual", "w/o dual"),
    "hg_dagger": ("daft_agent.baselines.hg_dagger", "HG-DAgger"),
    "hil_conrft": ("daft_agent.baselines.hil_conrft", "HIL-ConRFT"),
    "dsrl": ("daft_agent.baselines.dsrl", "DSRL"),
    "sac_demos": ("daft_agent.baselines.sac_demos", "SAC + demos"),
}
#: rows whose policy takes refinement commands (a with-commands column makes sense)
COMMAND_ROWS = ("daft",)


def make_baseline(
    name: str, env: Any, store: Any, seed: int = 0, settings: BaselineSettings | None = None
) -> Any:
    """Build row ``name`` on ``env`` with the demonstrations in ``store``.

    Raises:
        AgentConfigError: an unknown row, naming the known ones.
    """
    if name not in BASELINES:
        raise AgentConfigError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    module = importlib.import_module(BASELINES[name][0])
    return module.make(env, store, seed, settings or BaselineSettings())


__all__ = ["BASELINES", "COMMAND_ROWS", "BaselineSettings", "make_baseline"]
