"""The Protobuf messages of the events (generated into `tipwise.events.v1` from proto/tipwise/events/v1).

Other modules reach them here, through the public package: `events.messages.TipDecided`.
"""

from tipwise.events.v1.consent_changed_pb2 import ConsentChanged
from tipwise.events.v1.envelope_pb2 import Envelope
from tipwise.events.v1.feedback_reaction_pb2 import FeedbackReaction, Reaction
from tipwise.events.v1.preferences_changed_pb2 import PreferencesChanged
from tipwise.events.v1.reward_defaulted_pb2 import RewardDefaulted
from tipwise.events.v1.signal_received_pb2 import SignalReceived
from tipwise.events.v1.tip_decided_pb2 import TipDecided
from tipwise.events.v1.tip_delivered_pb2 import TipDelivered
from tipwise.events.v1.user_deleted_pb2 import UserDeleted

__all__ = [
    "ConsentChanged",
    "Envelope",
    "FeedbackReaction",
    "PreferencesChanged",
    "Reaction",
    "RewardDefaulted",
    "SignalReceived",
    "TipDecided",
    "TipDelivered",
    "UserDeleted",
]
