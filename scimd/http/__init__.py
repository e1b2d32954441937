"""scimd's HTTP layer: the middleware pipeline and the views (see ``scimd.app``)."""
