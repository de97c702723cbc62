"""Every room's tables, registered on ``SQLModel.metadata``: what Alembic migrates and compares against.

A room that adds tables lists its models module here (``tests/store/test_migrations.py`` checks that the
migrated schema matches them).
"""

from api import admin_sessions  # noqa: F401 - admin logins
from apps import models as apps_models  # noqa: F401 - publications and API keys
from conversations import models as conversations_models  # noqa: F401 - conversations and their exchanges
from evaluations import models as evaluations_models  # noqa: F401 - test sets, evaluations and their results
from jobs import models as jobs_models  # noqa: F401 - batch jobs and schedules
from knowledge import models as knowledge_models  # noqa: F401 - knowledge bases, their documents and chunks
from runs import models as runs_models  # noqa: F401 - runs, their trace rows, worker liveness
from workflows import models as workflows_models  # noqa: F401 - workflows and their versions
