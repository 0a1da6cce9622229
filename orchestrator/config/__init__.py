"""Layered configuration (docs/configuration.md).

Defaults < user < project < local < environment < command line.
"""

from orchestrator.config.loader import LoadedConfig, load_config
from orchestrator.config.model import PipelineConfig, Settings, StageConfig

__all__ = ["LoadedConfig", "PipelineConfig", "Settings", "StageConfig", "load_config"]
