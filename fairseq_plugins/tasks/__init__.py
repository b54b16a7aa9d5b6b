"""Tasks. fairseq imports this folder for --user-dir, but only when the package was not imported
before (``import fairseq_plugins`` in a script or test), so fairseq_plugins/__init__.py imports it too."""
from fairseq_plugins.tasks import d3pm_task, diffuseq_task, diffuser_task  # noqa: F401  (imported to register the tasks)
