"""A minimal complete scimd backend plugin (an in-memory store), for plugin authors to copy."""
