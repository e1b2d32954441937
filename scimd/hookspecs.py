"""scimd's pluggy hook specifications (expanded by the plugin-system work)."""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("scimd")
hookimpl = pluggy.HookimplMarker("scimd")
