"""Prompt texts and parsers shared by builders, schemas, review, rewards and eval. Imports nothing above engines."""
