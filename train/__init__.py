"""Thin TRL recipes that train on judgeforge datasets."""
