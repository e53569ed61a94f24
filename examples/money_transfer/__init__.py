"""Money transfer: Workflow Update with a validator, and a saga that refunds a failed transfer."""
