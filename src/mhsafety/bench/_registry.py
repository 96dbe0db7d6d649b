"""What the package's ``inspect_ai`` entry point loads: our model APIs and test-set tasks."""

from mhsafety.bench import inspect_tasks as inspect_tasks
from mhsafety.bench import models as models
