"""Published apps: publishing, API keys, limits, chat serving."""
