"""The Ray cluster-launcher configs validate against Ray's own cluster-config schema (filled
out with the provider's defaults as ``ray up`` does, no cloud call), and keep the dashboard
on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ["ray_config.yaml", "ray_config.local.yaml"]

pytest.importorskip("ray")
pytest.importorskip("jsonschema")


def _validate(config: dict) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(config))


@pytest.mark.parametrize("name", CONFIGS)
def test_cluster_config_is_valid_for_ray(name):
    config = yaml.safe_load((ROOT / name).read_text())
    _validate(config)
    heads = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in heads and "0.0.0.0" not in heads


def test_the_schema_check_catches_a_mistake():
    import jsonschema

    config = yaml.safe_load((ROOT / "ray_config.yaml").read_text())
    config["available_node_types"]["gpu_worker"]["resourcez"] = {"GPU": 1}
    with pytest.raises(jsonschema.ValidationError, match="resourcez"):
        _validate(config)
