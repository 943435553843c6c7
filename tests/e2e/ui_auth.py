"""An auth manager for the UI test: Airflow's simple auth manager, with one user who may read no DAG.

The simple auth manager's roles all read every DAG, so it cannot express "a user without access to this
DAG"; this subclass denies every DAG to the user ``outsider`` and is otherwise the same. The plugin asks
whatever auth manager is configured (through Airflow's ``requires_access_dag``), so this is the check a
FAB or Keycloak deployment's per-DAG permissions reach.
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

OUTSIDER = "outsider"


class OutsiderAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        if user.get_name() == OUTSIDER:
            return False
        return bool(super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details))
