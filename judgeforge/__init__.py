"""judgeforge: build, curate, review, publish and train on the datasets self-improving LLMs learn from."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("judgeforge")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
