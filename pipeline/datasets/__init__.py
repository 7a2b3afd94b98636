"""From the store to training data: conversations, ChatML, quality scores, preferences, splits, cards."""
