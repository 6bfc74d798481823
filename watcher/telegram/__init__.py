"""The Telegram command bot: commands, replies, and its long-polling loop."""
