"""LDAP bridge storage backend for scimd (``storage.backend = "ldap"``)."""

__version__ = "0.1.0"
