"""The offline model's vocabulary and rules, as package data (read by flowmagic.llm.offline_rules)."""
