"""Background work on RQ: the outbox relay, the tasks, and the sweep."""
