"""Tooling that builds, checks and serves the book to readers; not part of the science package
``fusion_utils`` (nothing in ``fusion_utils`` imports it).

- ``python -m fusion_book.build`` (``make book``) executes the chapters and builds the HTML;
- ``python -m fusion_book.check`` (``make book-check``) loads every page in headless Chromium;
- ``python -m fusion_book.pdf`` (``make pdf``) prints the whole book into one PDF;
- ``fusion-book list|params|run`` (:mod:`fusion_book.cli`) runs one chapter with other
  parameters;
- :mod:`fusion_book.prerequisites` and :mod:`fusion_book.runtimes` write what each chapter needs,
  its download links and the measured run times; :mod:`fusion_book.commands` collects and checks
  every command the book prints; :mod:`fusion_book.settings` holds the repository setting
  behind the launch buttons.
"""
