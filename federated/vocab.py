"""The model's output vocabularies: what a next-app category and a next-place type can be.

They are part of the model's identity (model_id): changing one is a new model. features.py maps vault rows
onto them, model.py sizes its heads by them; both import them from here, neither from the other.
APP_CATEGORIES is ingest/apps.py's CATEGORIES (federated does not import ingest; a test pins them equal).
"""

from __future__ import annotations

APP_CATEGORIES: tuple[str, ...] = ("Communication", "Social", "Video", "Music", "Productivity", "Navigation",
                                   "Health & Fitness", "News", "Shopping", "Games", "Other")
PLACE_TYPES: tuple[str, ...] = ("home", "work", "gym", "food", "shop", "transit", "other", "unknown")

__all__ = ["APP_CATEGORIES", "PLACE_TYPES"]
