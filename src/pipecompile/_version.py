"""The version, in a module of its own: every layer may read it without importing the
package's façade (:mod:`pipecompile` loads :mod:`.api` on first use)."""

__version__ = "0.1.0"
