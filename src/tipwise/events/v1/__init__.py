"""Generated Protobuf code of the event schemas in proto/tipwise/events/v1 (`make proto`; do not edit)."""
