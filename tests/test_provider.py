"""The provider as Airflow sees it: schema-valid provider info, discovery, the connection form."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

from airflow_wavespeed import CONNECTION_UI_FIELD_BEHAVIOUR, get_provider_info


def test_provider_info_validates_against_airflows_schema() -> None:
    import airflow
    import jsonschema

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_every_listed_module_and_class_imports() -> None:
    info = get_provider_info()
    modules = [m for section in ("hooks", "operators", "sensors", "triggers") for entry in info[section] for m in entry["python-modules"]]
    modules += [entry["python-module"] for entry in info["transfers"]]
    for module in modules:
        importlib.import_module(module)
    for classpath in [c["hook-class-name"] for c in info["connection-types"]] + info["extra-links"]:
        module, _, name = classpath.rpartition(".")
        assert hasattr(importlib.import_module(module), name), classpath


def test_connection_form() -> None:
    from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook

    (conn_type,) = get_provider_info()["connection-types"]
    assert conn_type["connection-type"] == "wavespeed" == WaveSpeedHook.conn_type
    behaviour = conn_type["ui-field-behaviour"]
    assert {"schema", "port", "login"} <= set(behaviour["hidden-fields"])
    assert behaviour["relabeling"] == {"password": "API Key", "host": "Base URL"}
    assert behaviour["placeholders"]["host"] == "https://api.wavespeed.ai"
    assert WaveSpeedHook.get_ui_field_behaviour() == CONNECTION_UI_FIELD_BEHAVIOUR  # Airflow 3.1/3.2 read this
    assert WaveSpeedHook.default_conn_name == "wavespeed_default"


def test_providers_manager_discovers_the_provider() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-wavespeed" in manager.providers
    assert manager.hooks["wavespeed"].hook_class_name == "airflow_wavespeed.hooks.wavespeed.WaveSpeedHook"


def test_airflow_providers_list_shows_it() -> None:
    airflow = Path(sys.executable).parent / "airflow"
    result = subprocess.run([str(airflow), "providers", "list", "-o", "json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "airflow-provider-wavespeed" in result.stdout


def test_the_package_carries_the_urls_airflow_shows() -> None:
    """The Providers page links to the Documentation project URL (issue 14: it once pointed nowhere)."""
    from importlib.metadata import metadata

    from airflow.providers_manager import ProvidersManager

    urls = dict(entry.split(", ", 1) for entry in metadata("airflow-provider-wavespeed").get_all("Project-URL") or [])
    assert {"Documentation", "Source", "Changelog", "Issues"} <= set(urls)
    provider = ProvidersManager().providers["airflow-provider-wavespeed"]
    # Airflow 3.1 keeps the space after "Documentation," in the metadata line; 3.2+ strips it.
    assert provider.data["documentation-url"].strip() == urls["Documentation"]
