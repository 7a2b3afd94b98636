"""The X persona bot (issue 7): config, its own SQL store, the X API interactor, safety rules,
the timeline and engagement loops. See pipeline/bot/README.md for the schema."""
