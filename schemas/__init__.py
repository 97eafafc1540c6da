"""Typed row models, Arrow schemas and TRL views for every dataset kind."""
