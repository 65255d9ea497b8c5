"""Persistence of resources behind one interface (`Store`); SQLAlchemy Core implements it."""

from m2mcloud.cse.store.base import CinWrite, Resource, Store
from m2mcloud.cse.store.sql import SqlStore, open_store

__all__ = ["CinWrite", "Resource", "SqlStore", "Store", "open_store"]
