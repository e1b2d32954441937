"""The plugin's tests. The core suite's directory (``<repo>/tests``) is appended to this
package's search path, so ``tests._http_helpers`` and the core test modules
(``tests.test_http_resources`` ...) import under their usual names while the plugin's own
modules (searched first) keep theirs; ``tests/_core.py`` reruns core modules against slapd."""

from pathlib import Path

CORE_TESTS = Path(__file__).resolve().parents[3] / "tests"
__path__.append(str(CORE_TESTS))
