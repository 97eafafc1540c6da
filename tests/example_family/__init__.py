"""A small dataset family added the documented way (docs/architecture.md): one schema file, one builder file.

The test that uses it (tests/test_example_family.py) adds the one registry line itself, so nothing in the
package changes: the family is built, curated with its default spec, reviewed, carded and trained.
"""
