"""lifevault: the on-device personal data platform. Composition root: CLI, settings, demo."""

__version__ = "0.1.0"
