"""Models and archs. fairseq imports this folder for --user-dir, but only when the package was not
imported before (``import fairseq_plugins`` in a script or test), so fairseq_plugins/__init__.py imports it too."""
from fairseq_plugins.models import cpu_sizes, d3pm_model, diffuseq_model, diffuser_model  # noqa: F401  (imported to register the archs)
