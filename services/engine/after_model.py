"""Work that follows every new model version of a project engine.

:meth:`services.engine.project_engine.ProjectEngine.on_model` calls :func:`run_after_model` once the new
version is stored and serving. Each hook runs in turn in the retrain thread; one that
raises is logged and never affects the model, the other hooks or the next retrain.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from services.data_engine import slices

if TYPE_CHECKING:
    from services.engine.project_engine import ProjectEngine

log = logging.getLogger(__name__)

HOOKS = (slices.after_model,)  # failure slices are re-mined and measured with each version


def run_after_model(engine: ProjectEngine) -> None:
    for hook in HOOKS:
        try:
            hook(engine)
        except Exception:
            log.exception("after-model hook %s.%s failed; the new model serves anyway", hook.__module__, hook.__name__)
