"""A reference for relying services: accept only live, unrevoked devices of our factory CA."""

from birthright.relying.middleware import DeviceAuthMiddleware
from birthright.relying.status import HttpStatusSource, MemoryNonces

__all__ = ["DeviceAuthMiddleware", "HttpStatusSource", "MemoryNonces"]
