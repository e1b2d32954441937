"""scimd's state store (tokens, events, JIT links...). See ``scimd.state.base``."""

from scimd.state.base import Event, StateStore, TokenRecord

__all__ = ["Event", "StateStore", "TokenRecord"]
