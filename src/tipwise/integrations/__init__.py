"""Integrations: connected calendars (iCal feeds), the sealed credential vault, sync cursors, signals."""

from tipwise.integrations.contracts import (
    ConnectionKind,
    ConsentRequired,
    IntegrationIn,
    IntegrationOut,
    SyncReport,
    SyncStatus,
)
from tipwise.integrations.endpoints import build_router
from tipwise.integrations.facade import IntegrationsFacade
from tipwise.integrations.feeds import FeedReader
from tipwise.integrations.handlers import ConsentWatcher
from tipwise.integrations.privacy import IntegrationsPersonalData
from tipwise.integrations.settings import IntegrationsSettings
from tipwise.integrations.vault import Vault

__all__ = [
    "ConnectionKind",
    "ConsentRequired",
    "ConsentWatcher",
    "FeedReader",
    "IntegrationIn",
    "IntegrationOut",
    "IntegrationsFacade",
    "IntegrationsPersonalData",
    "IntegrationsSettings",
    "SyncReport",
    "SyncStatus",
    "Vault",
    "build_router",
]
