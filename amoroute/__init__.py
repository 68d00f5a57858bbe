"""Plumbing shared by every amoroute process: settings helpers, logging, the gRPC
server bootstrap, gRPC channels, the database engine and migrations. No domain logic."""

__version__ = "0.1.0"
