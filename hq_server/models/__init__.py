"""HQ's tables, one module per noun; importing this package registers them all."""

from hq_server.models.auth import ApiToken, User
from hq_server.models.deals import Deal
from hq_server.models.events import AgentStream, Event, PushCount, PushFailure, SeqGap
from hq_server.models.finance import (
    ExportJob,
    FxRate,
    PipelineChange,
    PipelineCut,
    PipelineSnapshot,
)
from hq_server.models.jobs import JobOutbox
from hq_server.models.org import OrgUnit, Rep
from hq_server.models.oversight import (
    Digest,
    LaggingFlag,
    Notification,
    Target,
    Webhook,
    WebhookDelivery,
)
from hq_server.models.playbook import Approval, PlaybookVersion, Violation
from hq_server.models.rollups import DailyRollup, UnitRollup, WeeklyRollup, WeeklyUnitRollup

__all__ = [
    "AgentStream",
    "Approval",
    "ApiToken",
    "DailyRollup",
    "Deal",
    "Digest",
    "Event",
    "ExportJob",
    "FxRate",
    "PipelineChange",
    "PipelineCut",
    "PipelineSnapshot",
    "JobOutbox",
    "LaggingFlag",
    "Notification",
    "OrgUnit",
    "PlaybookVersion",
    "PushCount",
    "PushFailure",
    "Rep",
    "SeqGap",
    "Target",
    "UnitRollup",
    "WeeklyRollup",
    "WeeklyUnitRollup",
    "User",
    "Violation",
    "Webhook",
    "WebhookDelivery",
]
