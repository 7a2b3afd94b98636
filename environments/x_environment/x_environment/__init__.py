"""Naptha X environment (issue 7): observe the timeline, post and reply through the bot's rules."""
