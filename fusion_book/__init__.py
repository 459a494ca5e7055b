"""Tooling that builds and checks the book: ``python -m fusion_book.build`` (``make book``) and
``python -m fusion_book.check`` (``make book-check``). Not part of the science package
``fusion_utils``; nothing in ``fusion_utils`` imports it.
"""
