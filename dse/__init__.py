"""dse: design-space exploration of neural networks on in-memory-computing hardware.

Stages (each a subpackage or module with a small public function; see DESIGN.md):
calibrate (``dse.devices``), train (``dse.train``), map / inject / estimate (``dse.chip``),
search (``dse.search``) and report (``dse.report``).
"""

from importlib.metadata import PackageNotFoundError, version

from dse.errors import DseError

try:
    __version__ = version("dse")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["DseError", "__version__"]
