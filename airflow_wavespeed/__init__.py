"""Apache Airflow provider for WaveSpeed AI (OpenAI GPT Image 2 Edit and any other WaveSpeed model).

This module stays import-light: Airflow reads :func:`get_provider_info` on every process start.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

#: The ``wavespeed`` connection form: the API key, an optional base URL, and the extra for the one
#: switch a private deployment may need (``allow_private_output_hosts``).
CONNECTION_UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port", "login"],
    "relabeling": {"password": "API Key", "host": "Base URL"},
    "placeholders": {
        "host": "https://api.wavespeed.ai",
        "password": "your WaveSpeed API key",
        "extra": '{"allow_private_output_hosts": false}',
    },
}


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": "airflow-provider-wavespeed",
        "name": "WaveSpeed AI",
        "description": "Run WaveSpeed AI models, such as OpenAI GPT Image 2 Edit, from Airflow DAGs.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "WaveSpeed AI",
                "external-doc-url": "https://wavespeed.ai/docs",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {"integration-name": "WaveSpeed AI", "python-modules": ["airflow_wavespeed.hooks.wavespeed"]}
        ],
        "operators": [
            {
                "integration-name": "WaveSpeed AI",
                "python-modules": [
                    "airflow_wavespeed.operators.run_model",
                    "airflow_wavespeed.operators.image_edit",
                    "airflow_wavespeed.operators.budget",
                    "airflow_wavespeed.operators.review",
                ],
            }
        ],
        "sensors": [
            {"integration-name": "WaveSpeed AI", "python-modules": ["airflow_wavespeed.sensors.prediction"]}
        ],
        "triggers": [
            {"integration-name": "WaveSpeed AI", "python-modules": ["airflow_wavespeed.triggers.prediction"]}
        ],
        "transfers": [
            {
                "source-integration-name": "WaveSpeed AI",
                "target-integration-name": "Amazon Simple Storage Service (S3)",
                "python-module": "airflow_wavespeed.transfers.wavespeed_to_s3",
            }
        ],
        "task-decorators": [
            {"name": "wavespeed", "class-name": "airflow_wavespeed.decorators.wavespeed.wavespeed_task"}
        ],
        "extra-links": ["airflow_wavespeed.links.WaveSpeedPredictionLink"],
        # The UI views. Airflow loads provider-info plugins only with [core] lazy_discover_providers=False,
        # so the same class is also an ``airflow.plugins`` entry point (pyproject.toml), loaded always.
        "plugins": [
            {"name": "wavespeed", "plugin-class": "airflow_wavespeed.plugins.wavespeed_plugin.WaveSpeedPlugin"}
        ],
        "connection-types": [
            {
                "connection-type": "wavespeed",
                "hook-class-name": "airflow_wavespeed.hooks.wavespeed.WaveSpeedHook",
                "hook-name": "WaveSpeed AI",
                "ui-field-behaviour": CONNECTION_UI_FIELD_BEHAVIOUR,
            }
        ],
    }
