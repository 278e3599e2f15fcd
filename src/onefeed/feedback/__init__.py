"""The feedback log of ``onefeed serve``: events (``events``), the durable SQLite / PostgreSQL
log (``log``) and its export to events Parquet that ``onefeed data prepare`` reads
(``export``, imported on use: it needs polars). docs/SERVING.md "Feedback log"."""

from onefeed.feedback.events import KINDS, FeedbackError, FeedbackEvent
from onefeed.feedback.log import FeedbackLog, LoggedEvent, open_log

__all__ = ["KINDS", "FeedbackError", "FeedbackEvent", "FeedbackLog", "LoggedEvent", "open_log"]
