"""orch: tensor-parallel transformer inference on clusters of low-power MCUs."""

__version__ = "0.1.0"
